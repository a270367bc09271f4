"""Driving a bot in-process the way the webhook and the worker do, and reading what reached Telegram."""

import itertools

from bots.chat_processing import chat_process
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.models import Chat
from tests.telegram_updates import text_update

_update_ids = itertools.count(500_000)


def say(project, chat_id: int, text: str) -> Chat:
    """A private message through intake, chat processing and the generation queue."""
    result = update_receive(project=project, payload=text_update(chat_id, text, update_id=next(_update_ids)))
    chat = Chat.objects.get(pk=result.chat_id)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


def texts_to(fake_telegram, project, chat_id: int) -> list[str]:
    return [
        call.params["text"]
        for call in fake_telegram.calls_to("sendMessage", token=project.bot_token)
        if call.ok and call.params["chat_id"] == chat_id
    ]
