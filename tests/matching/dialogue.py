"""Driving a matching bot in-process the way the worker does, and building profiles directly."""

import itertools
import math
from datetime import timedelta

import numpy as np
from django.utils import timezone

from bots.callbacks import callback_process
from bots.chat_processing import chat_process
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.llm.embeddings import OFFLINE_DIM, OFFLINE_MODEL_ID
from bots.models import Chat, Message
from matching.cv import cv_read
from matching.models import Profile
from tests.telegram_updates import message_update, text_update, user

_callback_ids = itertools.count(1)
_update_ids = itertools.count(900_000)
_clock = itertools.count(1)
_file_ids = itertools.count(1)


def sender(chat_id: int, username: str | None = None, language_code: str = "en") -> dict:
    """A Telegram user; username None means `user<id>`, "" means none (Telegram then omits the field)."""
    found = user(chat_id, first_name=f"User{chat_id}", username=username or "", language_code=language_code)
    if username is None:
        found["username"] = f"user{chat_id}"
    elif not username:
        del found["username"]
    return found


def say(project, chat_id: int, text: str, *, username: str | None = None) -> Chat:
    """A private message, processed like chat_process_task + generations_process_due_task would."""
    result = update_receive(project=project, payload=text_update(chat_id, text, sender=sender(chat_id, username)))
    chat = Chat.objects.get(pk=result.chat_id)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


def document_update(
    chat_id: int,
    *,
    file_id: str,
    file_name: str,
    mime_type: str,
    file_size: int | None,
    caption: str | None = None,
    username: str | None = None,
) -> dict:
    document = {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_name": file_name, "mime_type": mime_type}
    if file_size is not None:
        document["file_size"] = file_size
    fields: dict = {"document": document}
    if caption is not None:
        fields["caption"] = caption
    return message_update(chat_id, sender=sender(chat_id, username), **fields)


def file_on_telegram(fake_telegram, content: bytes, file_name: str) -> str:
    """A file the fake Telegram serves through getFile + download; returns its file_id."""
    file_id = f"doc-{next(_file_ids)}"
    fake_telegram.add_file(file_id, content, f"documents/{file_id}/{file_name}")
    return file_id


def send_document(
    project,
    fake_telegram,
    chat_id: int,
    content: bytes,
    *,
    file_name: str,
    mime_type: str,
    caption: str | None = None,
    declared_size: int | None = None,
) -> Chat:
    """A document message, processed like the worker would: intake, the CV read, then the agent's turn."""
    file_id = file_on_telegram(fake_telegram, content, file_name)
    size = len(content) if declared_size is None else declared_size
    payload = document_update(
        chat_id, file_id=file_id, file_name=file_name, mime_type=mime_type, file_size=size, caption=caption
    )
    result = update_receive(project=project, payload=payload)
    chat = Chat.objects.get(pk=result.chat_id)
    chat_process(chat_id=chat.pk)
    document_message = Message.objects.filter(chat=chat).exclude(files=[]).latest("pk")
    cv_read(message_id=document_message.pk)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


def callback_update(chat_id: int, data: str, *, username: str | None = None, from_id: int | None = None) -> dict:
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": f"cb-{next(_callback_ids)}",
            "from": sender(from_id or chat_id, username),
            "chat_instance": f"ci-{chat_id}",
            "data": data,
            "message": {
                "message_id": 77, "date": 0, "text": "...",
                "chat": {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"},
            },
        },
    }  # fmt: skip


def press(project, chat_id: int, data: str, *, username: str | None = None) -> None:
    """An inline-button press, processed like callback_process_task would."""
    result = update_receive(project=project, payload=callback_update(chat_id, data, username=username))
    assert result.callback_update_id is not None
    callback_process(update_id=result.callback_update_id)


def sent(fake_telegram, project, chat_id: int) -> list[dict]:
    """The sendMessage parameters that reached the fake Telegram for one chat of one bot, in order."""
    calls = fake_telegram.calls_to("sendMessage", token=project.bot_token)
    return [c.params for c in calls if c.ok and c.params["chat_id"] == chat_id]


def texts_to(fake_telegram, project, chat_id: int) -> list[str]:
    return [params["text"] for params in sent(fake_telegram, project, chat_id)]


def buttons(params: dict) -> list[str]:
    markup = params.get("reply_markup") or {}
    return [button["callback_data"] for row in markup.get("inline_keyboard", []) for button in row]


def toasts(fake_telegram, project) -> list[str | None]:
    return [c.params.get("text") for c in fake_telegram.calls_to("answerCallbackQuery", token=project.bot_token)]


# --- vectors with known similarities --------------------------------------------------------------------


def axis(index: int, dim: int = OFFLINE_DIM) -> np.ndarray:
    vector = np.zeros(dim)
    vector[index] = 1.0
    return vector


def toward(base: int, similarity: float, other: int, dim: int = OFFLINE_DIM) -> list[float]:
    """A unit vector whose cosine similarity with axis `base` is `similarity` (the rest along axis `other`).

    Two such vectors on the same base but different `other` axes have similarity s1 * s2.
    """
    return (similarity * axis(base, dim) + math.sqrt(1 - similarity**2) * axis(other, dim)).tolist()


def active_profile(
    project,
    chat_id: int,
    role: str,
    vector: list[float],
    *,
    username: str | None = None,
    summary: str | None = None,
    changed_ago: timedelta | None = None,
    model: str = OFFLINE_MODEL_ID,
) -> Profile:
    """An active profile with a chosen vector; earlier-made profiles count as changed earlier."""
    chat, _ = Chat.objects.get_or_create(
        project=project, telegram_chat_id=chat_id,
        defaults={"user_id": chat_id, "username": username if username is not None else f"user{chat_id}",
                  "first_name": f"User{chat_id}"},
    )  # fmt: skip
    text = summary or f"{role} number {chat_id}"
    changed = timezone.now() - (changed_ago or timedelta(hours=1)) + timedelta(milliseconds=next(_clock))
    return Profile.objects.create(
        project=project, chat=chat, role=role, summary=text, matching_summary=text,
        private_observations=f"private note about {chat_id}", state=Profile.State.ACTIVE, embedding=vector,
        embedding_dim=len(vector), embedding_model=model, embedded_text=text, profile_updated_at=changed,
        activated_at=changed,
    )  # fmt: skip
