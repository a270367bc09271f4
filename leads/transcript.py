"""What a human reviewer reads about a lead: the chat transcript and the summary post.

Both render in the project's language (Django's translation machinery, en and ru) and show times in
the project's time zone. Every query is scoped by the lead's project.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import override

from bots.conversation import speech_length
from bots.llm.transcription import SPEECH_KINDS
from bots.models import Chat, Message, Turn
from leads.models import Lead
from tenants.models import Project

logger = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M"
TELEGRAM_TEXT_LIMIT = 4096  # the summary is one message; the transcript is a file and has no limit
EMPTY = "—"

LEAD_TITLE = _("Lead #%(id)s")
CLIENT = _("Client")
BOT = _("Bot")
NAME = _("Name")
CITY = _("City")
SERVICE = _("Service")
CONTACT = _("Contact")
SHARED_CONTACT = _("Shared contact")
CLIENT_STATUS = _("Client status")
FILE_COUNT = _("Files")
HISTORY_UPDATED = _("history updated: %(time)s")
CONTACT_MARKER = _("shared contact")
FILE_KINDS = {
    "photo": _("photo"),
    "video": _("video"),
    "document": _("document"),
    "voice": _("voice message"),
    "video_note": _("video note"),
    "audio": _("audio"),
    "animation": _("animation"),
    "sticker": _("sticker"),
}
# A reply that failed never reached the customer, so it is not part of the conversation.
_UNSEEN_TURN_STATUSES = (Turn.Status.FAILED, Turn.Status.COMPOSING)


@dataclass(frozen=True)
class _Line:
    at: datetime
    order: int  # at equal times the customer's message comes before the reply to it
    pk: int
    speaker: str
    text: str


def lead_transcript(lead: Lead) -> str:
    """The whole chat as `[YYYY-MM-DD HH:MM] Client: ...` / `Bot: ...` lines, headed by the lead id."""
    project = lead.project
    zone = project_zone(project)
    with override(project.language):
        lines = sorted(_client_lines(lead) + _bot_lines(lead), key=lambda line: (line.at, line.order, line.pk))
        rendered = [str(LEAD_TITLE % {"id": lead.pk}), _client_identity(lead.chat), ""]
        for line in lines:
            stamp = timezone.localtime(line.at, zone).strftime(TIME_FORMAT)
            rendered.append(f"[{stamp}] {line.speaker}: {_indent_continuations(line.text)}")
    return "\n".join(rendered) + "\n"


def lead_summary_text(lead: Lead, *, updated_at: datetime | None = None) -> str:
    """The summary post (plain text) for the lead group; with `updated_at`, a "history updated" footer."""
    project = lead.project
    with override(project.language):
        head = "\n".join(_summary_fields(lead))
        footer = ""
        if updated_at is not None:
            stamp = timezone.localtime(updated_at, project_zone(project)).strftime(TIME_FORMAT)
            footer = "\n\n" + str(HISTORY_UPDATED % {"time": stamp})
    summary = _clamp(lead.summary.strip(), TELEGRAM_TEXT_LIMIT - len(head) - len(footer) - 2)
    return f"{head}\n\n{summary}{footer}" if summary else f"{head}{footer}"


def history_updated_at(lead: Lead) -> datetime:
    """When the chat last changed: the newest customer message or bot reply.

    Derived from the history rather than the clock, so a retried refresh renders the same footer.
    """
    scope = {"project_id": lead.project_id, "chat_id": lead.chat_id}
    newest_message = Message.objects.filter(**scope).aggregate(at=Max("created_at"))["at"]
    turns = Turn.objects.filter(**scope).exclude(reply="").exclude(status__in=_UNSEEN_TURN_STATUSES)
    newest_reply = turns.aggregate(at=Max(Coalesce("finished_at", "created_at")))["at"]
    moments = [moment for moment in (newest_message, newest_reply) if moment is not None]
    return max(moments) if moments else timezone.now()


def project_zone(project: Project) -> ZoneInfo:
    """The project's time zone; a bad value must not stop a lead from going out, so it falls back to UTC."""
    try:
        return ZoneInfo(project.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r, using UTC", project.timezone, extra={"project_id": project.pk})
        return ZoneInfo("UTC")


def file_marker(file: dict) -> str:
    """`[photo]`, `[document 'x.pdf']`: a file as the transcript shows it (call inside `override`)."""
    kind = str(FILE_KINDS.get(file.get("kind", ""), file.get("kind") or "file"))
    name = file.get("file_name") or ""
    return f"[{kind} '{name}']" if name else f"[{kind}]"


# The helpers below run inside `override(project.language)`, so their labels render translated.


def _client_lines(lead: Lead) -> list[_Line]:
    messages = Message.objects.filter(project_id=lead.project_id, chat_id=lead.chat_id).order_by("created_at", "pk")
    lines = []
    for message in messages:
        if text := _message_text(message):
            lines.append(_Line(message.created_at, 0, message.pk, str(CLIENT), text))
    return lines


def _bot_lines(lead: Lead) -> list[_Line]:
    turns = (
        Turn.objects.filter(project_id=lead.project_id, chat_id=lead.chat_id)
        .exclude(reply="")
        .exclude(status__in=_UNSEEN_TURN_STATUSES)
    )
    return [_Line(turn.finished_at or turn.created_at, 1, turn.pk, str(BOT), turn.reply.strip()) for turn in turns]


def _message_text(message: Message) -> str:
    """The message's text, then a marker per attached file."""
    parts = [message.text.strip()] if message.text.strip() else []
    heard = message.transcription or {}
    for file in message.files:
        marker = file_marker(file)
        if heard.get("status") == "done" and file.get("kind") in SPEECH_KINDS:
            # `[voice message 0:12] what was said`: the recording stays a file of the lead; its words read here.
            marker = f"{marker[:-1]} {speech_length(file.get('duration') or heard.get('seconds'))}] {heard.get('text')}"
        parts.append(marker)
    if message.contact and not parts:
        parts.append(f"[{CONTACT_MARKER}]")
    return "\n".join(parts)


def _client_identity(chat: Chat) -> str:
    """Who the customer is on Telegram, in case the forwarded message hides the profile."""
    names = " ".join(part for part in (chat.first_name, chat.last_name) if part)
    who = " ".join(part for part in (f"@{chat.username}" if chat.username else "", names) if part)
    return f"Telegram: {who or EMPTY} (id {chat.telegram_chat_id})"


def _summary_fields(lead: Lead) -> list[str]:
    fields = [
        str(LEAD_TITLE % {"id": lead.pk}),
        f"{NAME}: {lead.name or EMPTY}",
        f"{CITY}: {lead.city or EMPTY}",
        f"{SERVICE}: {lead.service or EMPTY}",
        f"{CONTACT}: {lead.contact or EMPTY}",
    ]
    if shared := _shared_contact(lead.shared_contact):
        fields.append(f"{SHARED_CONTACT}: {shared}")
    fields += [f"{CLIENT_STATUS}: {lead.client_status or EMPTY}", f"{FILE_COUNT}: {len(lead.files or [])}"]
    return fields


def _shared_contact(contact: object) -> str:
    """`+49 170 1234567 (Anna Petrova)` from the contact the customer shared with the button."""
    if not isinstance(contact, dict) or not contact.get("phone_number"):
        return ""
    name = " ".join(str(contact[key]) for key in ("first_name", "last_name") if contact.get(key))
    return f"{contact['phone_number']} ({name})" if name else str(contact["phone_number"])


def _indent_continuations(text: str) -> str:
    # Continuation lines are indented so a multi-line message still reads as one entry.
    return text.replace("\n", "\n    ")


def _clamp(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"
