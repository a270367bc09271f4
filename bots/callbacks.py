"""Inline-button presses: routed by the prefix of their data (`match:accept:42` -> "match")."""

import logging

from django.utils import timezone
from telegram.error import TelegramError

from bots.event_loop import run_sync
from bots.gateway import normalize_update
from bots.kinds import callback_handler_for
from bots.models import Chat, TelegramUpdate
from bots.telegram_client import bot_for_token

logger = logging.getLogger(__name__)


def callback_process(*, update_id: int) -> None:
    update = TelegramUpdate.objects.select_related("project").get(pk=update_id)
    if update.processed_at is not None:  # the sweep re-enqueued a press whose first task got to it after all
        return
    incoming = normalize_update(update.payload)
    if incoming.callback is None:
        TelegramUpdate.objects.filter(pk=update.pk).update(processed_at=timezone.now())
        return
    chat = Chat.objects.select_related("project").get(project=update.project, telegram_chat_id=incoming.chat_id)
    handler = callback_handler_for(update.project, incoming.callback.data)
    notice = handler(chat, incoming) if handler is not None else None
    TelegramUpdate.objects.filter(pk=update.pk).update(processed_at=timezone.now())
    try:
        bot = bot_for_token(update.project.bot_token)
        run_sync(bot.answer_callback_query(incoming.callback.id, text=notice), timeout=30)
    except TelegramError as exc:  # the spinner times out on its own; nothing to retry
        logger.info(
            "answerCallbackQuery failed: %s",
            exc,
            extra={"project_id": chat.project_id, "chat_id": chat.telegram_chat_id},
        )
