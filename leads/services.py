"""Leads: two-phase dispatch (finished persisted, sent to every CRM backend, sent persisted).

`lead_finish` is idempotent per conversation: the chat state keeps the lead id, so a second
`send_lead` (or a timer racing the agent) returns the same lead and never creates another.
"""

import logging
import re
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bots.models import Chat
from core import metrics
from core.db_locks import session_lock
from leads.crm.base import CrmError, CrmPermanentError, crm_backends_for
from leads.models import Lead, LeadDispatch
from leads.state import SalesState, sales_state_update
from tenants.models import Project

logger = logging.getLogger(__name__)

MAX_REFRESHES = 5
DISPATCH_LOCK_NAMESPACE = 0x1EAD  # first key of the advisory locks on lead dispatches

# Conventions of the notes scratchpad (`key: value` lines), English and Russian keys.
NOTE_KEYS = {
    "name": ("name", "имя"),
    "city": ("city", "город"),
    "service": ("service", "услуга"),
    "contact": ("contact", "phone", "контакт", "телефон"),
}
_NOTE_LINE = re.compile(r"^\s*([\w ]+?)\s*:\s*(.+?)\s*$", re.MULTILINE)


def notes_fields(notes: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in _NOTE_LINE.findall(notes or ""):
        for field, aliases in NOTE_KEYS.items():
            if key.strip().lower() in aliases and field not in found:
                found[field] = value[:200]
    return found


def lead_finish(*, chat: Chat, summary: str, source: str = "agent") -> tuple[Lead, bool]:
    """Phase one: persist the finished lead (once per conversation). Returns (lead, created)."""
    with transaction.atomic():
        # of=self: a join under FOR UPDATE would lock the project row too, which every turn of the project needs.
        chat = Chat.objects.select_for_update(of=("self",)).select_related("project").get(pk=chat.pk)
        state = SalesState.of(chat)
        if state.lead_id and (lead := Lead.objects.filter(pk=state.lead_id, chat=chat).first()) is not None:
            return lead, False
        lead = Lead.objects.create(
            project=chat.project, chat=chat, summary=summary.strip() or "(no summary)", notes=state.notes,
            client_status=state.client_status, shared_contact=state.shared_contact, files=state.files,
            determined_url=state.determined_url, source=source, **notes_fields(state.notes),
        )  # fmt: skip
        sales_state_update(chat=chat, lead_id=lead.pk)
        logger.info("lead finished", extra={"project_id": chat.project_id, "chat_id": chat.telegram_chat_id,
                                            "lead_id": lead.pk, "source": source})  # fmt: skip
    from leads.tasks import lead_dispatch_task

    transaction.on_commit(lambda: lead_dispatch_task.delay(lead.pk))
    metrics.leads.labels(project=chat.project.slug, status="finished").inc()
    return lead, True


def lead_dispatch(*, lead: Lead) -> Lead:
    """Phase two: send to every configured CRM backend not yet done, then mark the lead sent."""
    backends = crm_backends_for(lead.project)
    if not backends:
        Lead.objects.filter(pk=lead.pk, status=Lead.Status.FINISHED).update(status=Lead.Status.FAILED)
        logger.error("lead has no CRM to go to: connect a lead group", extra={"project_id": lead.project_id,
                                                                                "lead_id": lead.pk})  # fmt: skip
        lead.refresh_from_db()
        return lead
    for backend in backends:
        dispatch, _ = LeadDispatch.objects.get_or_create(lead=lead, backend=backend.name)
        with session_lock(DISPATCH_LOCK_NAMESPACE, dispatch.pk) as claimed:
            if not claimed:  # a concurrent dispatcher is posting this one; posting it too would duplicate
                continue
            dispatch.refresh_from_db()
            if dispatch.status == LeadDispatch.Status.SENT:
                continue
            dispatch.attempts += 1
            # Each posted part is saved at once (autocommit): a worker killed mid-post leaves the parts it
            # posted on record, and the sweep's retry posts only the rest.
            save_refs = partial(_dispatch_save_refs, dispatch.pk)
            try:
                # What an interrupted earlier attempt already posted is not posted again.
                dispatch.refs = backend.send(lead, partial_refs=dispatch.refs or None, on_progress=save_refs)
            except CrmError as exc:
                dispatch.refs = exc.refs or dispatch.refs
                permanent = isinstance(exc, CrmPermanentError)
                dispatch.status = LeadDispatch.Status.FAILED if permanent else LeadDispatch.Status.PENDING
                dispatch.error = str(exc)[:2000]
                logger.warning("lead dispatch to %s failed: %s", backend.name, exc,
                               extra={"project_id": lead.project_id, "lead_id": lead.pk})  # fmt: skip
            else:
                dispatch.status, dispatch.error, dispatch.sent_at = LeadDispatch.Status.SENT, "", timezone.now()
            dispatch.save()
    statuses = set(lead.dispatches.values_list("status", flat=True))
    outcome = None
    if statuses == {LeadDispatch.Status.SENT}:
        # The conditional updates make the count once per lead, however many dispatchers race.
        if (
            Lead.objects.filter(pk=lead.pk)
            .exclude(status=Lead.Status.SENT)
            .update(status=Lead.Status.SENT, sent_at=timezone.now())
        ):
            outcome = "sent"
    elif LeadDispatch.Status.PENDING not in statuses and Lead.objects.filter(
        pk=lead.pk, status=Lead.Status.FINISHED
    ).update(status=Lead.Status.FAILED):
        outcome = "failed"
    if outcome is not None:
        metrics.leads.labels(project=metrics.project_label(lead.project_id), status=outcome).inc()
    lead.refresh_from_db()
    return lead


def _dispatch_save_refs(dispatch_id: int, refs: dict[str, Any]) -> None:
    LeadDispatch.objects.filter(pk=dispatch_id).update(refs=refs, updated_at=timezone.now())


def lead_resend(*, lead: Lead) -> bool:
    """Operator's "resend to CRM": the worker tries the failed backends again; sent ones are not repeated.

    Returns False when there is nothing to resend (every backend has the lead already).
    """
    if lead.status == Lead.Status.SENT:
        return False
    with transaction.atomic():
        lead.dispatches.exclude(status=LeadDispatch.Status.SENT).update(status=LeadDispatch.Status.PENDING)
        Lead.objects.filter(pk=lead.pk, status=Lead.Status.FAILED).update(status=Lead.Status.FINISHED)
        from leads.tasks import lead_dispatch_task

        transaction.on_commit(lambda: lead_dispatch_task.delay(lead.pk))
    return True


def lead_note_customer_message(*, lead: Lead) -> bool:
    """A customer wrote after dispatch: count it; True when the posted lead should be refreshed."""
    return bool(
        Lead.objects.filter(pk=lead.pk, updates_after_dispatch__lt=MAX_REFRESHES).update(
            updates_after_dispatch=F("updates_after_dispatch") + 1
        )
    )


def lead_refresh(*, lead: Lead) -> None:
    """Update every posted copy of the lead in place (new transcript, "history updated" footer)."""
    by_name = {backend.name: backend for backend in crm_backends_for(lead.project)}
    for dispatch in lead.dispatches.filter(status=LeadDispatch.Status.SENT):
        backend = by_name.get(dispatch.backend)
        if backend is None:
            continue
        try:
            dispatch.refs = backend.refresh(lead, dispatch.refs)
        except CrmError as exc:
            logger.warning("lead refresh failed: %s", exc, extra={"project_id": lead.project_id, "lead_id": lead.pk})
            continue
        dispatch.save(update_fields=["refs", "updated_at"])
    Lead.objects.filter(pk=lead.pk).update(refreshed_at=timezone.now())


def leads_retry_unsent(*, older_than_seconds: int = 30) -> int:
    """Sweep: finished leads whose dispatch never completed (a crash between the two phases)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = Lead.objects.filter(status=Lead.Status.FINISHED, created_at__lt=cutoff)
    count = 0
    for lead in stuck.select_related("project"):
        lead_dispatch(lead=lead)
        count += 1
    return count


def lead_group_connect(*, project: Project, chat: Chat) -> bool:
    """`/start connect_<slug>` in a group: it becomes the lead group, unless one is set already."""
    if chat.chat_type not in ("group", "supergroup"):
        return False
    return bool(
        Project.objects.filter(pk=project.pk, lead_group_id__isnull=True).update(lead_group_id=chat.telegram_chat_id)
    )
