"""An operator's data duties towards one Telegram user of one project: export their data, erase it.

Erasure removes the conversation (messages, turns, raw updates, chat state, names), the matching
profile (and with it the user's matches) and the personal fields of their leads, which stay as counted,
anonymous rows so the project's figures keep adding up. The chat row stays, anonymised and detached
from the Telegram id, so leads keep their place; if the person writes again, they start a new chat.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bots.models import Chat, Message, TelegramUpdate, Turn
from leads.models import FollowUp, Lead
from matching.models import BroadcastDelivery, Match, Profile
from tenants.models import Project

logger = logging.getLogger(__name__)

ERASED = "[erased]"
# Detached chats get ids below every real Telegram chat id (the most negative are ~ -100 * 10**10).
ERASED_CHAT_ID_BASE = -(10**15)


class ErasureRefused(ValueError):
    """The erasure request cannot be done; the message is safe to show to the operator."""


@dataclass(frozen=True)
class ErasureReport:
    telegram_user_id: int
    chats: int
    messages: int
    turns: int
    updates: int
    profiles: int
    leads: int

    def __str__(self) -> str:
        return (
            f"Telegram user {self.telegram_user_id}: {self.chats} chat(s) anonymised, {self.messages} message(s) "
            f"and {self.turns} turn(s) deleted, {self.updates} raw update(s) cleared, {self.profiles} profile(s) "
            f"deleted, {self.leads} lead(s) stripped of personal fields"
        )


def _user_chats(project: Project, telegram_user_id: int) -> Any:
    return Chat.objects.filter(project=project).filter(
        Q(user_id=telegram_user_id) | Q(telegram_chat_id=telegram_user_id, chat_type="private")
    )


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def chat_data_export(*, project: Project, chat_id: int) -> dict[str, Any]:
    """Everything stored about one chat of the project, as JSON-ready data (what a data request returns)."""

    chat = Chat.objects.get(project=project, pk=chat_id)
    profiles = Profile.objects.filter(project=project, chat=chat)
    matches = Match.objects.filter(project=project).filter(Q(user_a__chat=chat) | Q(user_b__chat=chat))
    return {
        "exported_at": timezone.now().isoformat(),
        "project": project.slug,
        "chat": {
            "telegram_chat_id": chat.telegram_chat_id, "telegram_user_id": chat.user_id, "username": chat.username,
            "first_name": chat.first_name, "last_name": chat.last_name, "language_code": chat.language_code,
            "state": chat.state, "created_at": _when(chat.created_at), "blocked_at": _when(chat.blocked_at),
        },
        "messages": [
            {"at": _when(m.created_at), "text": m.text, "command": m.command, "files": m.files, "contact": m.contact}
            for m in chat.messages.order_by("created_at", "pk")
        ],
        "replies": [
            {"at": _when(t.created_at), "trigger": t.trigger, "status": t.status, "text": t.reply, "model": t.model,
             "cost_usd": str(t.cost_usd), "tool_exchange": t.blocks}
            for t in chat.turns.order_by("created_at", "pk")
        ],
        "leads": [
            {"id": lead.pk, "status": lead.status, "summary": lead.summary, "notes": lead.notes, "name": lead.name,
             "city": lead.city, "service": lead.service, "contact": lead.contact,
             "shared_contact": lead.shared_contact, "client_status": lead.client_status, "files": lead.files,
             "created_at": _when(lead.created_at)}
            for lead in Lead.objects.filter(project=project, chat=chat)
        ],
        "matching_profile": [
            {field: getattr(p, field) for field in (*Profile.SHARED_FIELDS, "private_observations", "state")}
            for p in profiles
        ],
        "matches": [
            {"id": m.pk, "status": m.status, "created_at": _when(m.created_at)} for m in matches
        ],
    }  # fmt: skip


def telegram_user_erase(*, project: Project, telegram_user_id: int, operator: str) -> ErasureReport:
    """Erase one Telegram user's data in one project (other projects of the same person are untouched)."""

    with transaction.atomic():
        chats = list(_user_chats(project, telegram_user_id).select_for_update())
        if not chats:
            raise ErasureRefused(f"no chat of Telegram user {telegram_user_id} in {project.slug}")
        chat_ids = [chat.pk for chat in chats]
        messages = Message.objects.filter(project=project, chat_id__in=chat_ids).delete()[1].get("bots.Message", 0)
        turns = Turn.objects.filter(project=project, chat_id__in=chat_ids).delete()[1].get("bots.Turn", 0)
        sent_by_user = (
            Q(payload__message__from__id=telegram_user_id) | Q(payload__edited_message__from__id=telegram_user_id)
            | Q(payload__callback_query__from__id=telegram_user_id)
            | Q(payload__message__chat__id=telegram_user_id) | Q(payload__my_chat_member__from__id=telegram_user_id)
        )  # fmt: skip
        # The row stays (its update_id keeps a redelivery from being processed twice); the content goes.
        updates = TelegramUpdate.objects.filter(project=project).filter(sent_by_user).update(payload={"erased": True})
        profiles = Profile.objects.filter(project=project, chat_id__in=chat_ids).delete()[1].get("matching.Profile", 0)
        BroadcastDelivery.objects.filter(project=project, chat_id__in=chat_ids).delete()
        FollowUp.objects.filter(project=project, chat_id__in=chat_ids).delete()
        leads = Lead.objects.filter(project=project, chat_id__in=chat_ids).update(
            summary=ERASED, notes="", name="", city="", contact="", shared_contact=None, files=[], determined_url="",
        )  # fmt: skip
        for chat in chats:
            Chat.objects.filter(pk=chat.pk).update(
                telegram_chat_id=ERASED_CHAT_ID_BASE - chat.pk, user_id=None, username="", first_name=ERASED,
                last_name="", language_code="", state={}, paused_at=None, last_user_message_at=None,
            )  # fmt: skip
    report = ErasureReport(telegram_user_id, len(chats), messages, turns, updates, profiles, leads)
    logger.info("telegram user data erased: %s", report, extra={"project_id": project.pk, "operator": operator,
                                                                "chat_ids": chat_ids})  # fmt: skip
    return report
