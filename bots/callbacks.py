"""Inline-button presses: routed by the prefix of their data (`match:accept:42` -> "match").

Every press is answered with answerCallbackQuery exactly once, whatever its handler does: a button whose
query is never answered keeps its spinner for seconds and reads as broken. A handler that raises still gets
the answer (without a notice); the press stays unprocessed, so the sweep runs the handler again later, and
that retry does not answer a second time (`press_mark_answered`).
"""

import logging

from django.utils import timezone

from bots.event_loop import run_sync
from bots.gateway import normalize_update
from bots.kinds import callback_handler_for
from bots.models import Chat, TelegramUpdate
from bots.sweeps import press_mark_answered
from bots.telegram_client import bot_for_token
from core.log_redaction import redact

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_SECONDS = 30


def callback_process(*, update_id: int) -> None:
    update = TelegramUpdate.objects.select_related("project").get(pk=update_id)
    if update.processed_at is not None:  # the sweep re-enqueued a press whose first task got to it after all
        return
    incoming = normalize_update(update.payload)
    if incoming.callback is None:
        TelegramUpdate.objects.filter(pk=update.pk).update(processed_at=timezone.now())
        return
    notice: str | None = None
    try:
        chat = Chat.objects.select_related("project").get(
            project=update.project, telegram_chat_id=incoming.chat_id,
            business_connection_id=incoming.business_connection_id,
        )  # fmt: skip
        handler = callback_handler_for(update.project, incoming.callback.data)
        notice = handler(chat, incoming) if handler is not None else None
        TelegramUpdate.objects.filter(pk=update.pk).update(processed_at=timezone.now())
    finally:  # also when the handler raised: its exception goes on (the task fails, the sweep retries)
        callback_answer(update=update, callback_query_id=incoming.callback.id, chat_id=incoming.chat_id, text=notice)


def callback_answer(*, update: TelegramUpdate, callback_query_id: str, chat_id: int | None, text: str | None) -> None:
    """answerCallbackQuery once per press; never raises (the spinner times out on its own, nothing to retry)."""
    if not press_mark_answered(update=update):
        return
    try:
        bot = bot_for_token(update.project.bot_token)
        run_sync(bot.answer_callback_query(callback_query_id, text=text), timeout=ANSWER_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.info(
            "answerCallbackQuery failed: %s",
            redact(f"{type(exc).__name__}: {exc}"),
            extra={"project_id": update.project_id, "chat_id": chat_id},
        )
