"""A topic per lead when the lead group is a forum: the lead's posts, its conversation, and the operator's voice.

- **Opening.** Each lead dispatch asks Telegram whether the group is a forum (`getChat`; a group can be
  converted at any time). In a forum the lead gets its own topic, named after the lead ("Lead #42 · Anna ·
  +…0100"), and everything posted about the lead goes there. The topic is created at most once: the lead
  is marked `creating` (committed) before `createForumTopic`, and the thread id is stored on the lead as soon
  as Telegram answers. A crash or a timeout in between leaves the outcome unknown: the topic is then
  recognised from Telegram's `forum_topic_created` message (or any message in it) when one arrives, and
  after `TOPIC_OUTCOME_GRACE` without one the lead goes to the general thread with a logged reason, never
  to a second topic. No right to manage topics, or a topic deleted later, also means the general thread.
- **Operators.** A person (not a bot, not a service message) writing in a lead's topic is an operator: the
  bot is paused for that chat (the console shows the takeover) and the text is relayed to the customer as
  an operator reply turn, stored before it is sent and sent once (`bots/takeover.py`). `/resume` in the
  topic hands the chat back to the bot, as the console's "hand back" does.
- **Mirror.** The customer's messages after the lead are forwarded into the topic, and replies sent from
  the console are posted there, each claimed in a `TopicMirror` row before it is sent: a crash mid-send is
  never resent.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import suppress
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from bots.conversation import turn_deliver
from bots.gateway import IncomingUpdate, Sender, normalize_update
from bots.models import Chat, Message, Turn
from bots.takeover import TakeoverRefused, chat_hand_back, chat_operator_reply_stage, chat_take_over
from bots.telegram_outbox import ChatBlocked, PermanentSendError, SendError, SendOutcomeUnknown, call_with_policy
from leads.crm.base import CrmError, CrmPermanentError
from leads.models import Lead, TopicInbound, TopicMirror, TopicState
from leads.state import SalesState
from tenants.models import Project

logger = logging.getLogger(__name__)

# How long a topic whose creation outcome is unknown may still show up before the lead goes to the general thread.
TOPIC_OUTCOME_GRACE = timedelta(seconds=60)
TOPIC_NAME_LIMIT = 128  # Telegram's limit on a topic name
MIRROR_TEXT_LIMIT = 3500
RESUME_COMMAND = "/resume"
THREAD_GONE = "message thread not found"
_LEAD_MARK = re.compile(r"^Lead #(\d+)(?:\s|$)")
PAUSED_NOTICE = "The bot is paused for this customer: messages here go to them. Send /resume to hand back."
RESUMED_NOTICE = "The bot answers this customer again."
TOPIC_FIELDS = ["topic_state", "topic_group_id", "topic_thread_id", "topic_requested_at", "topic_note"]


# ---------------------------------------------------------------------------------------------- naming


def topic_name(lead: Lead) -> str:
    """ "Lead #42 · Anna · +…0100": the lead id first (how a topic is recognised), a phone shown by its end only."""
    contact = lead.shared_contact or {}
    name = (lead.name or " ".join(filter(None, (contact.get("first_name"), contact.get("last_name"))))).strip()
    parts = [f"Lead #{lead.pk}", " ".join(name.split())[:48]]
    phone = _phone_tail(lead.contact) or _phone_tail(str(contact.get("phone_number") or ""))
    return " · ".join(part for part in (*parts, phone) if part)[:TOPIC_NAME_LIMIT]


def _phone_tail(value: str) -> str:
    digits = re.sub(r"\D", "", value or "")
    return f"+…{digits[-4:]}" if len(digits) >= 7 else ""


def _lead_id_in(name: str | None) -> int | None:
    match = _LEAD_MARK.match(name or "")
    return int(match[1]) if match else None


# ---------------------------------------------------------------------------------------------- Bot API calls


def _log_extra(lead: Lead, **more: Any) -> dict[str, Any]:
    return {"project_id": lead.project_id, "lead_id": lead.pk, "chat_id": lead.topic_group_id, **more}


def group_call(*, project: Project, group_id: int, method_name: str, **kwargs: Any) -> Any:
    """One Bot API call to the lead group under the outbox policy, its errors as CRM errors."""
    try:
        return call_with_policy(project=project, chat=None, method_name=method_name, chat_id=group_id, **kwargs)
    except ChatBlocked as exc:
        raise CrmPermanentError(f"the bot cannot post to lead group {group_id}: {exc}") from exc
    except PermanentSendError as exc:
        raise CrmPermanentError(str(exc)) from exc
    except SendError as exc:
        raise CrmError(str(exc)) from exc


def thread_gone(exc: BaseException) -> bool:
    """Telegram's answer to a post into a deleted topic."""
    return THREAD_GONE in str(exc).lower()


def group_is_forum(*, project: Project, group_id: int) -> bool:
    """Whether the group has topics now (asked each time: a group can become a forum at any moment)."""
    try:
        chat = group_call(project=project, group_id=group_id, method_name="get_chat")
    except CrmPermanentError as exc:  # the posts that follow show the real problem, if there is one
        logger.warning("lead group %s: getChat refused, posting as to a plain group: %s", group_id, exc,
                       extra={"project_id": project.pk, "chat_id": group_id})  # fmt: skip
        return False
    return bool(getattr(chat, "is_forum", False))


# ---------------------------------------------------------------------------------------------- the lead's topic


def lead_topic_thread(*, project: Project, lead: Lead, group_id: int) -> int | None:
    """The thread the lead's posts go to: its own topic in a forum (created once), None for the general thread.

    Raises CrmError (transient) while a creation's outcome is unknown and the grace period runs.
    """
    for _ in range(3):  # a concurrent dispatcher may change the state between our read and our claim
        lead.refresh_from_db(fields=TOPIC_FIELDS)
        if lead.topic_group_id == group_id and lead.topic_state == TopicState.OPEN:
            return lead.topic_thread_id
        if lead.topic_group_id == group_id and lead.topic_state == TopicState.GENERAL:
            return None
        if lead.topic_group_id == group_id and lead.topic_state == TopicState.CREATING:
            return _creation_outcome_unknown(lead)
        if not group_is_forum(project=project, group_id=group_id):
            return None
        claimed = Lead.objects.filter(pk=lead.pk, topic_state=lead.topic_state, topic_group_id=lead.topic_group_id)
        if claimed.update(topic_state=TopicState.CREATING, topic_group_id=group_id, topic_thread_id=None,
                          topic_requested_at=timezone.now(), topic_note=""):  # fmt: skip
            return _topic_create(project=project, lead=lead, group_id=group_id)
    raise CrmError(f"lead {lead.pk}: its topic state kept changing; retrying later")


def _topic_create(*, project: Project, lead: Lead, group_id: int) -> int | None:
    name = topic_name(lead)
    try:
        topic = call_with_policy(
            project=project, chat=None, method_name="create_forum_topic", chat_id=group_id, name=name
        )
    except SendOutcomeUnknown as exc:  # it may exist: never ask for a second one
        logger.warning("lead topic: creation outcome unknown: %s", exc, extra=_log_extra(lead))
        raise CrmError(f"the topic of lead {lead.pk} may or may not exist yet: {exc}") from exc
    except (ChatBlocked, PermanentSendError) as exc:  # e.g. the bot may not manage topics
        _lead_to_general(lead, f"Telegram refused to create a topic: {exc}")
        return None
    except SendError as exc:  # provably not created (rate limited, unreachable): the next attempt asks again
        Lead.objects.filter(pk=lead.pk, topic_state=TopicState.CREATING).update(topic_state=TopicState.NONE)
        raise CrmError(f"the topic of lead {lead.pk} was not created: {exc}") from exc
    thread_id = int(topic.message_thread_id)
    Lead.objects.filter(pk=lead.pk, topic_state=TopicState.CREATING, topic_group_id=group_id).update(
        topic_state=TopicState.OPEN, topic_thread_id=thread_id
    )
    lead.refresh_from_db(fields=TOPIC_FIELDS)
    logger.info("lead topic %s opened: %s", thread_id, name, extra=_log_extra(lead, message_thread_id=thread_id))
    return lead.topic_thread_id if lead.topic_state == TopicState.OPEN else None


def _creation_outcome_unknown(lead: Lead) -> int | None:
    requested = lead.topic_requested_at or timezone.now()
    if timezone.now() - requested < TOPIC_OUTCOME_GRACE:
        raise CrmError(f"the topic of lead {lead.pk} was requested and its outcome is unknown; waiting for it")
    _lead_to_general(lead, "the topic's creation outcome stayed unknown (crash or timeout); a second topic could "
                           "duplicate it, so the lead is posted in the general thread")  # fmt: skip
    return None


def _lead_to_general(lead: Lead, reason: str) -> None:
    Lead.objects.filter(pk=lead.pk).update(topic_state=TopicState.GENERAL, topic_note=reason[:500])
    lead.refresh_from_db(fields=TOPIC_FIELDS)
    logger.warning("lead %s goes to the general thread: %s", lead.pk, reason, extra=_log_extra(lead))


def lead_topic_gone(*, lead: Lead, reason: str) -> None:
    """A post into the lead's topic was refused because the topic is gone: the general thread from now on."""
    Lead.objects.filter(pk=lead.pk, topic_state=TopicState.OPEN).update(
        topic_state=TopicState.GENERAL, topic_note=f"the topic was deleted: {reason}"[:500]
    )
    lead.refresh_from_db(fields=TOPIC_FIELDS)
    logger.warning("lead %s: its topic is gone, posting in the general thread: %s", lead.pk, reason,
                   extra=_log_extra(lead))  # fmt: skip


def _topic_adopt(*, project: Project, group_id: int, thread_id: int, name: str | None) -> Lead | None:
    """A topic whose creation outcome was unknown turns up (its name carries the lead id): it is the lead's."""
    lead_id = _lead_id_in(name)
    if lead_id is None or thread_id is None:
        return None
    adopted = Lead.objects.filter(
        pk=lead_id, project=project, topic_group_id=group_id, topic_thread_id__isnull=True,
        topic_state__in=(TopicState.CREATING, TopicState.GENERAL),
    ).update(topic_state=TopicState.OPEN, topic_thread_id=thread_id, topic_note="")  # fmt: skip
    lead = Lead.objects.filter(pk=lead_id, project=project, topic_group_id=group_id, topic_thread_id=thread_id).first()
    if adopted and lead is not None:
        logger.info("lead topic %s recognised from Telegram's update", thread_id, extra=_log_extra(lead))
    return lead


# ---------------------------------------------------------------------------------------------- inbound


def topic_message_receive(project: Project, incoming: IncomingUpdate, update_pk: int) -> bool:
    """Webhook side (kind hook): keep a message of a lead topic to apply on the worker. Stores, never sends."""
    if not project.lead_group_id or incoming.chat_id != project.lead_group_id:
        return False
    if incoming.message_thread_id is None or not incoming.is_topic_message:
        return False
    sender = incoming.sender
    if incoming.is_service:
        if incoming.topic_name is None:  # only a topic's creation tells us something
            return False
    elif sender is None or sender.is_bot:  # the bot's own posts, other bots, anonymous admins posting as the group
        return False
    inbound = TopicInbound.objects.create(project=project, update_id=update_pk)
    transaction.on_commit(lambda: _enqueue_inbound(inbound.pk, project.pk))
    return True


def _enqueue_inbound(inbound_id: int, project_id: int) -> None:
    from leads.tasks import lead_topic_inbound_task  # tasks import this module

    try:
        lead_topic_inbound_task.delay(inbound_id)
    except BrokerUnavailable as exc:
        logger.warning("broker unavailable, topic message left to the sweep: %s", exc, extra={"project_id": project_id})


def _operator_name(sender: Sender | None) -> str:
    if sender is None:
        return "lead group"
    name = " ".join(filter(None, (sender.first_name, sender.last_name)))
    name = name or (f"@{sender.username}" if sender.username else str(sender.user_id))
    return f"{name} (topic)"[:150]


def topic_inbound_apply(*, inbound_id: int) -> None:
    """Apply one topic message once: relay it to the customer (pausing the bot), hand back, or adopt a topic."""
    notice: tuple[Lead, str] | None = None
    with transaction.atomic():
        inbound = TopicInbound.objects.select_for_update(of=("self",)).select_related("project", "update")
        inbound = inbound.get(pk=inbound_id)
        if inbound.status == TopicInbound.Status.PENDING:
            notice = _inbound_apply(inbound)
            inbound.done_at = timezone.now()
            inbound.save()
        turn = inbound.turn
    if turn is not None and turn.status == Turn.Status.REPLY_READY:  # also a retry after a crash right here
        turn.chat = Chat.objects.select_related("project").get(pk=turn.chat_id)
        incoming = normalize_update(inbound.update.payload)
        if incoming.files:  # a photo or a document: Telegram copies it, caption and all
            _relay_copy(turn, group_id=incoming.chat_id, message_id=incoming.message_id)
        else:
            turn_deliver(turn=turn)
        turn.refresh_from_db(fields=["status"])
        extra = {"project_id": turn.project_id, "chat_id": turn.chat.telegram_chat_id, "turn_id": turn.pk}
        logger.info("topic message relayed to the customer: %s", turn.status, extra=extra)
    if notice is not None:
        _notice_post(*notice)


def _inbound_apply(inbound: TopicInbound) -> tuple[Lead, str] | None:
    """Decide and record what the message means (inside the inbound row's lock); a notice to post, if any."""
    project = inbound.project
    incoming = normalize_update(inbound.update.payload)
    group_id, thread_id = incoming.chat_id, incoming.message_thread_id
    lead = Lead.objects.filter(project=project, topic_group_id=group_id, topic_thread_id=thread_id).first()
    if lead is None and group_id is not None and thread_id is not None:
        lead = _topic_adopt(project=project, group_id=group_id, thread_id=thread_id, name=incoming.topic_name)
    inbound.lead = lead
    if incoming.is_service:
        inbound.status = TopicInbound.Status.ADOPTED if lead is not None else TopicInbound.Status.IGNORED
        return None
    if lead is None:
        inbound.status, inbound.note = TopicInbound.Status.IGNORED, "not the topic of a lead"
        return None
    chat = Chat.objects.select_related("project").get(pk=lead.chat_id, project=project)
    operator = _operator_name(incoming.sender)
    if incoming.command == RESUME_COMMAND:
        inbound.status = TopicInbound.Status.RESUMED
        # Committed with the row: the notice goes out once the hand-back is done.
        transaction.on_commit(lambda: chat_hand_back(chat=chat, operator=operator))
        return None
    text = incoming.text.strip()
    if incoming.files:  # stored as the turn's words (what the model reads later); the file itself is copied
        notes = [f"[the operator sent a {file.kind.replace('_', ' ')}]" for file in incoming.files]
        text = "\n".join([text, *notes] if text else notes)
    if incoming.command or not text:
        inbound.status = TopicInbound.Status.IGNORED
        inbound.note = "a command the topic does not know" if incoming.command else "nothing to relay"
        return None
    paused_now = chat_take_over(chat=chat, operator=operator)
    try:
        turn = chat_operator_reply_stage(chat=chat, text=text, operator=operator)
    except TakeoverRefused as exc:
        inbound.status, inbound.note = TopicInbound.Status.REFUSED, str(exc)[:500]
        return lead, f"Not sent: {exc}."
    inbound.turn, inbound.status = turn, TopicInbound.Status.RELAYED
    return (lead, PAUSED_NOTICE) if paused_now else None


def _relay_copy(turn: Turn, *, group_id: int | None, message_id: int | None) -> None:
    """Deliver a relayed file with copyMessage, under the same once-only claim as `turn_deliver`."""
    if not Turn.objects.filter(pk=turn.pk, status=Turn.Status.REPLY_READY).update(status=Turn.Status.SENDING):
        return
    status, error, sent_ids = Turn.Status.SENT, "", []
    try:
        copied = call_with_policy(project=turn.chat.project, chat=turn.chat, method_name="copy_message",
                                  from_chat_id=group_id, message_id=message_id)  # fmt: skip
        sent_ids = [copied.message_id]
    except SendOutcomeUnknown as exc:
        status, error = Turn.Status.SEND_UNKNOWN, str(exc)
    except SendError as exc:
        status, error = Turn.Status.FAILED, str(exc)
    Turn.objects.filter(pk=turn.pk).update(
        status=status, error=error[:2000], sent_message_ids=sent_ids, finished_at=timezone.now()
    )


def _notice_post(lead: Lead, text: str) -> None:
    """A short note of the bot in the lead's topic; best effort (it is information, not the lead)."""
    lead.refresh_from_db(fields=TOPIC_FIELDS)
    if lead.topic_state != TopicState.OPEN or lead.topic_group_id is None:
        return
    project = Project.objects.get(pk=lead.project_id)
    with suppress(CrmError):
        group_call(project=project, group_id=lead.topic_group_id, method_name="send_message", text=text,
                   message_thread_id=lead.topic_thread_id)  # fmt: skip


def topic_takeover_event(chat: Chat, event: str, turn: Turn | None) -> None:
    """Kind hook: a console reply is mirrored into the topic; a hand-back is noted there."""
    lead_id = SalesState.of(chat).lead_id
    if not lead_id:
        return
    if event == "reply":
        _enqueue_sync(chat.pk)
    elif event == "handed_back" and (lead := Lead.objects.filter(pk=lead_id, chat_id=chat.pk).first()) is not None:
        _notice_post(lead, RESUMED_NOTICE)


# ---------------------------------------------------------------------------------------------- mirror


def topic_messages_received(chat: Chat, messages: list[Message]) -> None:
    """Kind hook (inside the processing transaction): the customer wrote after the lead; mirror it after commit."""
    lead_id = SalesState.of(chat).lead_id
    if lead_id and Lead.objects.filter(pk=lead_id, topic_group_id__isnull=False).exists():
        transaction.on_commit(lambda: _enqueue_sync(chat.pk))


def _enqueue_sync(chat_pk: int) -> None:
    from leads.tasks import lead_topic_sync_task  # tasks import this module

    try:
        lead_topic_sync_task.delay(chat_pk)
    except BrokerUnavailable as exc:
        logger.warning("broker unavailable, topic mirror skipped for now: %s", exc, extra={"chat_pk": chat_pk})


def lead_topic_sync(*, chat_id: int) -> int:
    """Post into the lead's topic what it does not show yet (customer messages, console replies); how many."""
    chat = Chat.objects.select_related("project").get(pk=chat_id)
    lead_id = SalesState.of(chat).lead_id
    if not lead_id:
        return 0
    with transaction.atomic():
        lead = Lead.objects.select_for_update().filter(pk=lead_id, chat=chat).first()
        if lead is None or lead.topic_state not in (TopicState.OPEN, TopicState.GENERAL) or not lead.topic_group_id:
            return 0
        claims = list(_mirror_claim(lead, chat))
    for mirror, source in claims:
        _mirror_send(lead, chat, mirror, source)
    return len(claims)


def _mirror_claim(lead: Lead, chat: Chat) -> Iterator[tuple[TopicMirror, Message | Turn]]:
    """Claim what is to be mirrored, oldest first; the claim is committed before anything is sent."""
    messages = Message.objects.filter(
        chat=chat, project_id=chat.project_id, created_at__gt=lead.created_at, command="",
        telegram_message_id__isnull=False, topic_mirror__isnull=True,
    )  # fmt: skip
    replies = Turn.objects.filter(
        chat=chat, project_id=chat.project_id, trigger=Turn.Trigger.OPERATOR, status=Turn.Status.SENT,
        created_at__gt=lead.created_at, topic_mirror__isnull=True, topic_inbound__isnull=True,
    )  # fmt: skip
    sources: list[Message | Turn] = sorted([*messages, *replies], key=lambda source: source.created_at)
    for source in sources:
        kwargs = {"message": source} if isinstance(source, Message) else {"turn": source}
        yield TopicMirror.objects.create(lead=lead, **kwargs), source


def _mirror_send(lead: Lead, chat: Chat, mirror: TopicMirror, source: Message | Turn) -> None:
    project = chat.project
    for _ in range(2):  # once more in the general thread if the topic turns out to be gone
        in_topic = lead.topic_state == TopicState.OPEN
        thread = {"message_thread_id": lead.topic_thread_id} if in_topic else {}
        try:
            if isinstance(source, Message) and in_topic:
                posted = group_call(project=project, group_id=lead.topic_group_id, method_name="forward_message",
                                    from_chat_id=chat.telegram_chat_id, message_id=source.telegram_message_id,
                                    **thread)  # fmt: skip
            else:
                posted = group_call(project=project, group_id=lead.topic_group_id, method_name="send_message",
                                    text=_mirror_text(lead, source, in_topic), **thread)  # fmt: skip
        except CrmError as exc:
            if in_topic and thread_gone(exc):
                lead_topic_gone(lead=lead, reason=str(exc))
                continue
            TopicMirror.objects.filter(pk=mirror.pk).update(status=TopicMirror.Status.FAILED, error=str(exc)[:2000])
            logger.warning("lead topic mirror failed: %s", exc, extra=_log_extra(lead))
            return
        TopicMirror.objects.filter(pk=mirror.pk).update(status=TopicMirror.Status.SENT,
                                                        group_message_id=posted.message_id)  # fmt: skip
        return


def _mirror_text(lead: Lead, source: Message | Turn, in_topic: bool) -> str:
    prefix = "" if in_topic else f"Lead #{lead.pk} · "
    if isinstance(source, Turn):
        text = f"{prefix}Reply sent from the console:\n\n{source.reply}"
    else:
        files = f" [{len(source.files)} file(s)]" if source.files else ""
        text = f"{prefix}Customer: {source.text}{files}"
    return text if len(text) <= MIRROR_TEXT_LIMIT else text[: MIRROR_TEXT_LIMIT - 1] + "…"


# ---------------------------------------------------------------------------------------------- sweep


def topic_inbound_retry(*, older_than_seconds: int = 30) -> int:
    """Sweep: topic messages whose task was lost, and relayed replies a crash left unsent (their chat is paused,
    so the engine's sweep does not deliver them)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    unapplied = Q(status=TopicInbound.Status.PENDING)
    unsent = Q(status=TopicInbound.Status.RELAYED, turn__status=Turn.Status.REPLY_READY)
    recent = Q(created_at__lt=cutoff, created_at__gt=cutoff - timedelta(hours=1))
    stuck = TopicInbound.objects.filter(recent & (unapplied | unsent))
    count = 0
    for inbound_id in stuck.values_list("pk", flat=True)[:200]:
        topic_inbound_apply(inbound_id=inbound_id)
        count += 1
    return count
