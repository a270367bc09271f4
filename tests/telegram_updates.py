"""Builders of Telegram updates as the Bot API posts them to a webhook."""

import itertools
import json
import time
from typing import Any

_update_ids = itertools.count(1000)
_message_ids = itertools.count(1)


def user(user_id: int, *, first_name: str = "Anna", username: str = "anna", language_code: str = "en") -> dict:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "username": username,
            "language_code": language_code}  # fmt: skip


def message_update(chat_id: int, *, update_id: int | None = None, **fields: Any) -> dict:
    sender = fields.pop("sender", None) or user(chat_id)
    chat = {"id": chat_id, "type": "private", "first_name": sender["first_name"]}
    if chat_id < 0:
        chat = {"id": chat_id, "type": "supergroup", "title": "Leads"}
    message = {"message_id": next(_message_ids), "date": int(time.time()), "chat": chat, "from": sender, **fields}
    return {"update_id": update_id if update_id is not None else next(_update_ids), "message": message}


def text_update(chat_id: int, text: str, **kwargs: Any) -> dict:
    update = message_update(chat_id, text=text, **kwargs)
    if text.startswith("/"):
        command = text.split()[0]
        update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return update


def photo_update(chat_id: int, *, caption: str | None = None, **kwargs: Any) -> dict:
    sizes = [
        {"file_id": f"small-{chat_id}", "file_unique_id": f"us-{chat_id}", "width": 90, "height": 90, "file_size": 900},
        {"file_id": f"big-{chat_id}", "file_unique_id": f"ub-{chat_id}", "width": 1280, "height": 960,
         "file_size": 90000},
    ]  # fmt: skip
    fields: dict[str, Any] = {"photo": sizes}
    if caption is not None:
        fields["caption"] = caption
    return message_update(chat_id, **fields, **kwargs)


def webhook_post(client: Any, project: Any, update: dict) -> None:
    """Deliver an update to the project's webhook as Telegram does (with its secret); it must be taken."""
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(update), content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200, response.content


def topic_message_update(group_id: int, thread_id: int, text: str, *, sender: dict, topic_name: str = "") -> dict:
    """A message written in a forum topic, as Telegram posts it: it replies to the topic's creation message."""
    update = text_update(group_id, text, sender=sender)
    message = update["message"]
    chat = {"id": group_id, "type": "supergroup", "title": "Leads", "is_forum": True}
    created = {"name": topic_name or f"Topic {thread_id}", "icon_color": 7322096}
    message.update(chat=chat, message_thread_id=thread_id, is_topic_message=True)
    message["reply_to_message"] = {
        "message_id": thread_id, "date": message["date"], "chat": chat, "message_thread_id": thread_id,
        "is_topic_message": True, "forum_topic_created": created,
    }  # fmt: skip
    return update


# Telegram Business ------------------------------------------------------------------------------------------


def business_connection_update(connection: dict, *, update_id: int | None = None) -> dict:
    """The owner connected, reconfigured or disconnected the bot (`connection` as FakeTelegram.connect_business
    returns it)."""
    return {"update_id": update_id if update_id is not None else next(_update_ids), "business_connection": connection}


def business_message_update(
    connection_id: str,
    chat_id: int,
    text: str,
    *,
    sender: dict | None = None,
    edited: bool = False,
    message_id: int | None = None,
    update_id: int | None = None,
    **fields: Any,
) -> dict:
    """A message in a business chat: by default the customer's (`chat_id` is the customer); `sender` the owner's
    user for the owner's own message."""
    customer = user(chat_id, first_name="Carl", username="carl")
    message = {
        "message_id": message_id if message_id is not None else next(_message_ids), "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": customer["first_name"]},
        "from": sender or customer, "business_connection_id": connection_id, "text": text, **fields,
    }  # fmt: skip
    if edited:
        message["edit_date"] = int(time.time())
    kind = "edited_business_message" if edited else "business_message"
    return {"update_id": update_id if update_id is not None else next(_update_ids), kind: message}


def deleted_business_messages_update(connection_id: str, chat_id: int, message_ids: list[int]) -> dict:
    return {
        "update_id": next(_update_ids),
        "deleted_business_messages": {
            "business_connection_id": connection_id, "message_ids": message_ids,
            "chat": {"id": chat_id, "type": "private", "first_name": "Carl"},
        },
    }  # fmt: skip
