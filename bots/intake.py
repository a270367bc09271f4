"""What the webhook (and getUpdates polling) does with an update: validate, store, enqueue. No network."""

import hashlib
import logging
from dataclasses import dataclass

from celery import Task
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable
from psycopg.types.json import Jsonb

from bots.business import business_message_route, business_owner_wrote, business_update_apply
from bots.chat_intake import chat_intake_notify
from bots.gateway import IncomingUpdate, normalize_update
from bots.kinds import group_message_received
from bots.llm.transcription import speech_file, transcription_chain
from bots.models import Chat, Message, QuarantinedUpdate, TelegramUpdate
from core import metrics
from core.log_context import log_context
from core.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

ENGINE_COMMANDS = ("/start", "/debug")
QUARANTINE_ERROR_LIMIT = 4000


@dataclass(frozen=True)
class IntakeResult:
    status: str  # "stored" | "duplicate" | "ignored" | "taken" (by the project's kind, e.g. a lead topic)
    chat_id: int | None = None  # our Chat pk, for the task that processes it
    callback_update_id: int | None = None  # our TelegramUpdate pk when it was a button press


def _chat_upsert(project: Project, incoming: IncomingUpdate) -> Chat:
    """Create the chat or refresh its sender profile: one INSERT ... ON CONFLICT DO UPDATE round-trip.

    The returned object carries the pk and the fields written here only (the webhook needs no more).
    """
    sender = incoming.sender
    profile = {}
    # The chat's own user: in a business chat the owner writes too, and his name is not the customer's.
    if sender is not None and incoming.chat_type == "private" and sender.user_id == incoming.chat_id:
        profile = {
            "user_id": sender.user_id, "username": _fit("username", sender.username),
            "first_name": _fit("first_name", sender.first_name), "last_name": _fit("last_name", sender.last_name),
            "language_code": _fit("language_code", sender.language_code),
        }  # fmt: skip
    chat = Chat(
        project=project, telegram_chat_id=incoming.chat_id, chat_type=_fit("chat_type", incoming.chat_type),
        business_connection_id=incoming.business_connection_id, last_user_message_at=timezone.now(), **profile,
    )  # fmt: skip
    Chat.objects.bulk_create(
        [chat],
        update_conflicts=True,
        unique_fields=["project", "telegram_chat_id", "business_connection_id"],
        update_fields=["last_user_message_at", *profile],
    )
    return chat


def _fit(field: str, value: str) -> str:
    """Cut a sender or chat field to its column. Telegram's own values always fit (usernames have at most 32
    characters, language codes are IETF tags); a longer one is junk that must not cost the user their message."""
    return value[: Chat._meta.get_field(field).max_length]


def _update_store(project: Project, incoming: IncomingUpdate, payload: object) -> int | None:
    """Store the raw update once; None when this update_id was stored before (Telegram redelivered it).

    INSERT ... ON CONFLICT DO NOTHING RETURNING: one round-trip where a savepoint around a plain INSERT
    took three (the webhook's throughput is bound by database round-trips).
    """
    now = timezone.now()
    # A button press is marked processed by its handler; the beat's sweep re-enqueues presses left unapplied.
    processed_at = None if incoming.kind == "callback_query" else now
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TelegramUpdate._meta.db_table} (project_id, update_id, payload, received_at, processed_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (project_id, update_id) DO NOTHING RETURNING id",
            [project.pk, incoming.update_id, Jsonb(payload), now, processed_at],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _is_for_engine(incoming: IncomingUpdate) -> bool:
    """Private chats talk to the bot; in groups (the lead group) only our commands are for us."""
    if incoming.kind != "message" or incoming.chat_id is None:
        return False
    if incoming.chat_type == "private":
        return incoming.has_content or incoming.command is not None
    return incoming.command in ENGINE_COMMANDS


def _is_group_message(incoming: IncomingUpdate) -> bool:
    return incoming.kind == "message" and incoming.chat_type in ("group", "supergroup")


def update_receive(*, project: Project, payload: object) -> IntakeResult:
    """Store a Telegram update once and the user's message as an unanswered row. Raises MalformedUpdate."""
    incoming = normalize_update(payload)
    with log_context(chat_id=incoming.chat_id), transaction.atomic():
        update_pk = _update_store(project, incoming, payload)
        if update_pk is None:
            return IntakeResult("duplicate")
        if incoming.kind == "callback_query" and incoming.chat_id is not None:
            chat = _chat_upsert(project, incoming)
            return IntakeResult("stored", chat.pk, callback_update_id=update_pk)
        may_reply = True
        if incoming.kind in ("business_connection", "edited_business_message", "deleted_business_messages"):
            business_update_apply(project=project, incoming=incoming)
            return IntakeResult("ignored")
        if incoming.kind == "business_message":  # Telegram Business: bots/business.py
            route = business_message_route(project=project, incoming=incoming)
            if route.author == "bot" or not incoming.has_content:
                return IntakeResult("ignored")
            if route.author == "owner":
                business_owner_wrote(project=project, chat=_chat_upsert(project, incoming), incoming=incoming)
                return IntakeResult("ignored")
            may_reply = route.may_reply
        elif not _is_for_engine(incoming):
            if _is_group_message(incoming) and group_message_received(project, incoming, update_pk):
                return IntakeResult("taken")
            return IntakeResult("ignored")
        chat = _chat_upsert(project, incoming)
        command = incoming.command if incoming.command in ENGINE_COMMANDS else ""
        files = [file.to_json() for file in incoming.files]
        # A voice message or video note waits for the worker to transcribe it, then the model answers it.
        transcription = {"status": "pending"} if speech_file(files) and transcription_chain(project=project) else None
        Message.objects.create(
            project=project,
            chat=chat,
            telegram_message_id=incoming.message_id,
            text=incoming.text,
            command=command,
            command_args=incoming.command_args[: Message._meta.get_field("command_args").max_length] if command else "",
            files=files,
            contact=incoming.contact.to_json() if incoming.contact else None,
            transcription=transcription if not command else None,
            # A file without text is acknowledged without the model; commands are answered by the engine.
            needs_reply=may_reply and not command and bool(incoming.text.strip() or incoming.contact or transcription),
            # A business chat the bot may not answer keeps the message in its history, and nothing more happens.
            processed_at=None if may_reply else timezone.now(),
        )
        if not may_reply:
            return IntakeResult("ignored")
    metrics.messages.labels(project=project.slug, stage="received").inc()
    return IntakeResult("stored", chat.pk)


def update_accept(*, project: Project, payload: object) -> IntakeResult:
    """Store an update and hand it to the workers (webhook and getUpdates polling alike)."""
    from bots.tasks import callback_process_task  # tasks import the services: no cycle at load

    result = update_receive(project=project, payload=payload)
    extra = {"project_id": project.pk, "chat_pk": result.chat_id}
    if result.callback_update_id is not None:
        transaction.on_commit(lambda: _enqueue(callback_process_task, result.callback_update_id, extra=extra))
    elif result.status == "stored" and result.chat_id is not None:
        chat_intake_notify(project_id=project.pk, chat_id=result.chat_id)  # bots/chat_intake.py
    return result


def _enqueue(task: Task, *args: object, extra: dict[str, object], **kwargs: object) -> None:
    """The update is stored already: with the broker down, answer Telegram anyway and let the sweep enqueue it."""
    try:
        task.delay(*args, **kwargs)
    except BrokerUnavailable as exc:
        logger.warning("broker unavailable, %s left to the sweep: %s", task.name, exc, extra=extra)


def update_quarantine(*, project: Project, body: bytes, update_id: int | None, error: BaseException) -> int:
    """Keep a body the code could not store, byte for byte, for operators; returns how often it came.

    The webhook's last guard: the update is answered 200 so that Telegram stops retrying what would fail
    again, and nothing sent is lost. One row per distinct body: a redelivery only counts up.
    """
    table = QuarantinedUpdate._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (project_id, update_id, body_sha256, body, error, deliveries,"
            " first_received_at, last_received_at) VALUES (%s, %s, %s, %s, %s, 1, %s, %s)"
            f" ON CONFLICT (project_id, body_sha256) DO UPDATE SET deliveries = {table}.deliveries + 1,"
            " last_received_at = EXCLUDED.last_received_at RETURNING deliveries",
            [project.pk, update_id, hashlib.sha256(body).hexdigest(), body,
             redact(f"{type(error).__name__}: {error}")[:QUARANTINE_ERROR_LIMIT], now, now],
        )  # fmt: skip
        [deliveries] = cursor.fetchone()
    metrics.messages.labels(project=project.slug, stage="quarantined").inc()
    return deliveries
