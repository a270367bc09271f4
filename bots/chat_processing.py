"""Per-chat processing of stored messages: commands, file acknowledgements, and queueing the next turn."""

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from bots.conversation import system_reply, unanswered_messages
from bots.generations import generation_schedule
from bots.kinds import messages_received, start_handle
from bots.models import Chat, Generation, Message
from bots.texts import DEBUG_OFF, DEBUG_ON, DEFAULT_START, FILE_RECEIVED, in_language
from core import metrics
from core.log_context import log_context_bind

logger = logging.getLogger(__name__)


# What a terminal session (`manage.py chat`, which runs turns in its own process) needs first; each hook
# may return a note for the user. The knowledge app's takes the embedded store when no worker owns it.
TerminalSessionHook = Callable[[], str | None]
terminal_session_hooks: list[TerminalSessionHook] = []


def _chat_reset(chat: Chat, upto: Message) -> None:
    """/start: forget the conversation state; what came before it is no longer waiting for an answer."""
    chat.messages.filter(turn__isnull=True, needs_reply=True, pk__lte=upto.pk).update(needs_reply=False)
    Generation.objects.filter(chat=chat, status=Generation.Status.PENDING).update(
        status=Generation.Status.CANCELLED, finished_at=timezone.now()
    )
    Chat.objects.filter(pk=chat.pk).update(state={}, debug=False)
    chat.state, chat.debug = {}, False


def _handle(chat: Chat, message: Message) -> str | None:
    """Apply one stored message's immediate effect; returns a text to send without the model, if any."""
    project = chat.project
    if message.command == "/start":
        if start_handle(chat, message):
            return None
        _chat_reset(chat, message)
        return project.start_reply.strip() or in_language(project, DEFAULT_START)
    if message.command == "/debug":
        chat.debug = not chat.debug
        Chat.objects.filter(pk=chat.pk).update(debug=chat.debug)
        return in_language(project, DEBUG_ON if chat.debug else DEBUG_OFF)
    if message.files and not message.needs_reply:
        return in_language(project, FILE_RECEIVED)
    return None


def chat_process(*, chat_id: int) -> Generation | None:
    """Process the chat's new messages once; returns the turn generation to run, if one is queued."""
    replies: list[str] = []
    generation = None
    with transaction.atomic():
        chat = Chat.objects.select_for_update(of=("self",)).select_related("project").filter(pk=chat_id).first()
        if chat is None:
            return None
        log_context_bind(project_id=chat.project_id, chat_id=chat.telegram_chat_id)
        new = list(chat.messages.filter(processed_at__isnull=True).order_by("pk").select_for_update(skip_locked=True))
        for message in new:
            reply = _handle(chat, message)
            if reply:
                replies.append(reply)
        Message.objects.filter(pk__in=[m.pk for m in new]).update(processed_at=timezone.now())
        if new:
            metrics.messages.labels(project=chat.project.slug, stage="processed").inc(len(new))
        user_messages = [m for m in new if not m.command]
        if user_messages:
            messages_received(chat, user_messages)  # the kind keeps what it needs (files, contact, timers)
        if chat.blocked_at is None and chat.paused_at is None and unanswered_messages(chat).exists():
            generation = generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)
    for text in replies:
        system_reply(chat=chat, text=text)
    return generation
