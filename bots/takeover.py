"""Human takeover: an operator pauses the bot for one chat, replies through the bot, and hands back.

While a chat is paused the engine stays silent (chat turns and follow-up timers skip paused chats).
An operator's reply answers every message still waiting, as one turn of trigger "operator": stored
before it is sent and sent at most once, like the bot's own replies, and replayed to the model as the
assistant's words once the bot takes over again.
"""

import logging

from django.db import transaction
from django.utils import timezone

from bots.conversation import describe_message, turn_deliver, unanswered_messages
from bots.kinds import takeover_happened
from bots.models import Chat, Message, Turn

logger = logging.getLogger(__name__)

MAX_OPERATOR_REPLY_CHARS = 8000


class TakeoverRefused(ValueError):
    """The takeover request cannot be done; the message is safe to show to the operator."""


def _log_extra(chat: Chat, operator: str) -> dict[str, object]:
    return {"project_id": chat.project_id, "chat_id": chat.telegram_chat_id, "operator": operator}


def chat_take_over(*, chat: Chat, operator: str) -> bool:
    """Pause the bot for this chat. Returns False when it was paused already (nothing changes)."""
    paused = bool(Chat.objects.filter(pk=chat.pk, paused_at__isnull=True).update(paused_at=timezone.now()))
    # A pause the business owner started ends by itself; the operator's lasts until handed back.
    Chat.objects.filter(pk=chat.pk, paused_until__isnull=False).update(paused_until=None)
    chat.refresh_from_db(fields=["paused_at", "paused_until"])
    if paused:
        logger.info("chat taken over by an operator", extra=_log_extra(chat, operator))
        transaction.on_commit(lambda: takeover_happened(chat, "taken_over"))
    return paused


def _refuse(chat: Chat, operator: str, reason: str) -> TakeoverRefused:
    logger.info("operator reply refused: %s", reason, extra=_log_extra(chat, operator))
    return TakeoverRefused(reason)


def chat_operator_reply(*, chat: Chat, text: str, operator: str) -> Turn:
    """Send the operator's reply through the bot; it answers every message waiting in the chat."""
    turn = chat_operator_reply_stage(chat=chat, text=text, operator=operator)
    turn_deliver(turn=turn)
    turn.refresh_from_db()
    level = logging.INFO if turn.status == Turn.Status.SENT else logging.WARNING
    logger.log(level, "operator reply %s", turn.status, extra={**_log_extra(turn.chat, operator), "turn_id": turn.pk})
    takeover_happened(turn.chat, "reply", turn)
    return turn


def chat_operator_reply_stage(*, chat: Chat, text: str, operator: str) -> Turn:
    """Store the operator's reply as a turn ready to send (the caller delivers it with `turn_deliver`).

    Runs in the caller's transaction when there is one, so that the caller can record the turn with it.
    """
    text = text.strip()
    if not text:
        raise _refuse(chat, operator, "the reply is empty")
    if len(text) > MAX_OPERATOR_REPLY_CHARS:
        raise _refuse(chat, operator, f"the reply is longer than {MAX_OPERATOR_REPLY_CHARS} characters")
    with transaction.atomic():
        locked = Chat.objects.select_for_update(of=("self",)).select_related("project").get(pk=chat.pk)
        if locked.paused_at is None:
            raise _refuse(locked, operator, "take the chat over first: the bot is answering it")
        if locked.blocked_at is not None:
            raise _refuse(locked, operator, "the user blocked the bot; nothing can be sent")
        waiting = list(unanswered_messages(locked))
        turn = Turn.objects.create(
            project_id=locked.project_id, chat=locked, trigger=Turn.Trigger.OPERATOR, status=Turn.Status.REPLY_READY,
            user_text="\n\n".join(text for text in map(describe_message, waiting) if text), reply=text,
        )  # fmt: skip
        Message.objects.filter(pk__in=[m.pk for m in waiting]).update(turn=turn)
    turn.chat = locked
    return turn


def chat_hand_back(*, chat: Chat, operator: str) -> bool:
    """Let the bot answer again; messages that came in after the operator's last reply get a bot reply."""
    from bots.tasks import chat_process_task

    with transaction.atomic():
        resumed = bool(
            Chat.objects.filter(pk=chat.pk, paused_at__isnull=False).update(paused_at=None, paused_until=None)
        )
        if resumed and unanswered_messages(chat).exists():
            transaction.on_commit(lambda: chat_process_task.delay(chat.pk))
    chat.refresh_from_db(fields=["paused_at", "paused_until"])
    if resumed:
        logger.info("chat handed back to the bot", extra=_log_extra(chat, operator))
        takeover_happened(chat, "handed_back")
    return resumed
