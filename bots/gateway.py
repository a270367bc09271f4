"""Raw Telegram updates in, one normalised `IncomingUpdate` out.

This is the only module that reads update JSON. python-telegram-bot does the parsing, but it does not
check value types (it happily keeps `"text": 5` or `"chat": {"id": "abc"}`), so every field the engine
relies on is checked here too. Anything unreadable becomes `MalformedUpdate`, which the webhook answers
with 400 without storing anything.
"""

import math
import re
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from telegram import BusinessConnection as TelegramBusinessConnection
from telegram import BusinessMessagesDeleted, Contact, Message, PhotoSize, Update, User
from telegram import CallbackQuery as TelegramCallbackQuery
from telegram import Chat as TelegramChat
from telegram.warnings import PTBDeprecationWarning

T = TypeVar("T")

# Ids are stored in PostgreSQL bigint columns and the raw update in jsonb, which refuses NUL characters.
INT64 = (-(2**63), 2**63 - 1)
# Real updates nest a few levels (a reply inside a message inside the update); a bomb nests thousands.
MAX_DEPTH = 32
HANDLED_KINDS = ("message", "callback_query")
# Telegram Business (bots/business.py): a connected account's state, and the messages of its chats.
BUSINESS_KINDS = ("business_connection", "business_message", "edited_business_message", "deleted_business_messages")
FILE_KINDS = ("photo", "video", "document", "voice", "video_note", "audio", "animation", "sticker")
# A leading bot command as Telegram recognises one: `/name` or `/name@botname`, then a space or the end.
_COMMAND = re.compile(r"/(?P<name>[A-Za-z0-9_]{1,64})(?:@[A-Za-z0-9_]+)?(?=\s|$)")


class MalformedUpdate(ValueError):
    """The payload is not a Telegram update we can read."""


@dataclass(frozen=True)
class Sender:
    user_id: int
    username: str
    first_name: str
    last_name: str
    language_code: str
    is_bot: bool


@dataclass(frozen=True)
class FileRef:
    kind: str  # one of FILE_KINDS
    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    file_size: int | None
    duration: int | None = None  # seconds, for voice messages, video notes, audio and video

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["duration"] is None:  # only recordings have one
            del data["duration"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FileRef":
        return cls(
            kind=data["kind"],
            file_id=data["file_id"],
            file_unique_id=data.get("file_unique_id") or "",
            file_name=data.get("file_name") or "",
            mime_type=data.get("mime_type") or "",
            file_size=data.get("file_size"),
            duration=data.get("duration"),
        )


@dataclass(frozen=True)
class SharedContact:
    phone_number: str
    first_name: str
    last_name: str
    user_id: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SharedContact":
        return cls(
            phone_number=data["phone_number"],
            first_name=data.get("first_name") or "",
            last_name=data.get("last_name") or "",
            user_id=data.get("user_id"),
        )


@dataclass(frozen=True)
class CallbackQuery:
    id: str
    data: str
    message_id: int | None  # the message carrying the pressed button; None for inline-mode messages


@dataclass(frozen=True)
class BusinessConnectionInfo:
    """A `business_connection` update: the owner connected, changed the rights of, or disconnected the bot."""

    id: str
    owner: Sender
    user_chat_id: int
    date: int  # Unix time
    is_enabled: bool
    rights: dict[str, bool]  # the granted rights only, e.g. {"can_reply": True}

    @property
    def can_reply(self) -> bool:
        return bool(self.rights.get("can_reply"))


@dataclass(frozen=True)
class IncomingUpdate:
    update_id: int
    kind: str  # "message" | "callback_query" | "ignored"
    chat_id: int | None = None
    chat_type: str = ""  # private|group|supergroup|channel|""
    sender: Sender | None = None
    message_id: int | None = None
    text: str = ""  # message text, or the caption of a file
    files: tuple[FileRef, ...] = ()
    contact: SharedContact | None = None
    command: str | None = None  # "/start": lower-cased, without the @botname suffix
    command_args: str = ""  # what follows the command, stripped
    callback: CallbackQuery | None = None
    # Forum groups (a lead group with topics): the topic a message belongs to, and the name of the topic
    # a `forum_topic_created` service message announces (or that the message's topic was created with).
    message_thread_id: int | None = None
    is_topic_message: bool = False
    topic_name: str | None = None
    is_service: bool = False  # a service message (topic created, member joined, ...): nobody wrote it
    # Telegram Business: the connection a business message came through ("" elsewhere), whether a bot sent it
    # on the owner's behalf, the connection's new state, and the ids of deleted business messages.
    business_connection_id: str = ""
    sent_by_business_bot: bool = False
    business_connection: BusinessConnectionInfo | None = None
    deleted_message_ids: tuple[int, ...] = ()

    @property
    def has_content(self) -> bool:
        return bool(self.text.strip() or self.files or self.contact)


def normalize_update(payload: object) -> IncomingUpdate:
    """Read one webhook/getUpdates update. Raises MalformedUpdate for anything that is not one."""
    if not isinstance(payload, dict):
        raise MalformedUpdate(f"an update must be a JSON object, not {type(payload).__name__}")
    update_id = payload.get("update_id")
    if not _is_int(update_id):
        raise MalformedUpdate("update_id is missing or not an integer")
    _check_storable(payload, update_id)
    kind = next((key for key in (*HANDLED_KINDS, *BUSINESS_KINDS) if key in payload), None)
    if kind is None:
        # Edits, channel posts, membership changes, polls, types newer than our parser: acknowledged unread,
        # so a shape the parser does not know yet never makes Telegram redeliver it forever.
        return IncomingUpdate(update_id=update_id, kind="ignored")
    if not isinstance(payload[kind], dict):
        raise MalformedUpdate(f"update {update_id}: {kind} must be an object")
    try:
        update = Update.de_json({"update_id": update_id, kind: payload[kind]}, bot=None)
    except Exception as exc:  # a third-party parser fed untrusted input: whatever it raises means "not an update"
        raise MalformedUpdate(f"update {update_id} does not parse: {type(exc).__name__}: {exc}") from exc
    if update.message is not None:
        return _from_message(update_id, update.message)
    if update.callback_query is not None:
        return _from_callback_query(update_id, update.callback_query)
    if kind in BUSINESS_KINDS:
        return _from_business(update_id, kind, update)
    return IncomingUpdate(update_id=update_id, kind="ignored")


def _check_storable(payload: dict[str, Any], update_id: int) -> None:
    """Refuse what the database cannot store: NUL characters, lone surrogates, integers beyond 64 bits,
    floats that are not finite, nesting deeper than any real update (storing it would recurse in json.dumps)."""
    pending: list[tuple[object, int]] = [(payload, 1)]
    while pending:  # iterative: a deeply nested payload must not exhaust the stack
        value, depth = pending.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise MalformedUpdate(f"update {update_id} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise MalformedUpdate(f"update {update_id} contains {value} (JSON has no NaN or Infinity)")
        elif isinstance(value, str):
            if "\x00" in value:
                raise MalformedUpdate(f"update {update_id} contains a NUL character")
            try:
                value.encode()
            except UnicodeEncodeError:
                raise MalformedUpdate(f"update {update_id} contains invalid Unicode (a lone surrogate)") from None
        elif _is_int(value) and not INT64[0] <= value <= INT64[1]:
            raise MalformedUpdate(f"update {update_id} contains an integer beyond 64 bits")


def _from_message(update_id: int, message: Message) -> IncomingUpdate:
    chat_id, chat_type = _chat(message.chat, "message.chat")
    message_text = _optional(message.text, str, "message.text") or ""
    caption = _optional(message.caption, str, "message.caption") or ""
    # Commands come as message text; a caption that starts with "/" is a file's description, not an order.
    command, command_args = _command(message_text)
    return IncomingUpdate(
        update_id=update_id,
        kind="message",
        chat_id=chat_id,
        chat_type=chat_type,
        sender=_sender(message.from_user, "message.from"),
        message_id=_required(message.message_id, int, "message.message_id"),
        text=message_text or caption,
        files=_files(message),
        contact=_contact(message.contact),
        command=command,
        command_args=command_args,
        **_topic_fields(message),
    )


def _topic_fields(message: Message) -> dict[str, Any]:
    """Where a group message sits in a forum: its topic, and the topic's name when the update shows it."""
    is_topic = bool(_optional(message.is_topic_message, bool, "message.is_topic_message"))
    thread_id = _optional(message.message_thread_id, int, "message.message_thread_id") if is_topic else None
    created = message.forum_topic_created
    if created is None and message.reply_to_message is not None:  # a topic's messages reply to its creation
        created = message.reply_to_message.forum_topic_created
    name = _optional(created.name, str, "forum_topic_created.name") if created is not None else None
    service = message.forum_topic_created is not None or any(getattr(message, key, None) for key in _SERVICE_KEYS)
    return {"message_thread_id": thread_id, "is_topic_message": is_topic, "topic_name": name, "is_service": service}


_SERVICE_KEYS = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "pinned_message", "forum_topic_edited", "forum_topic_closed",
    "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden", "migrate_to_chat_id",
)  # fmt: skip


def _from_callback_query(update_id: int, query: TelegramCallbackQuery) -> IncomingUpdate:
    chat_id, chat_type, message_id = None, "", None
    if query.message is not None:  # absent when the button was on an inline-mode message
        chat_id, chat_type = _chat(query.message.chat, "callback_query.message.chat")
        message_id = _required(query.message.message_id, int, "callback_query.message.message_id")
    if query.from_user is None:  # always sent by Telegram; the consent flow needs to know who pressed
        raise MalformedUpdate("callback_query.from is missing")
    callback = CallbackQuery(
        id=_required(query.id, str, "callback_query.id"),
        data=_optional(query.data, str, "callback_query.data") or "",
        message_id=message_id,
    )
    return IncomingUpdate(
        update_id=update_id,
        kind="callback_query",
        chat_id=chat_id,
        chat_type=chat_type,
        sender=_sender(query.from_user, "callback_query.from"),
        message_id=message_id,
        callback=callback,
        # A button on a message the bot sent in a business chat: the press belongs to that chat.
        business_connection_id=_optional(getattr(query.message, "business_connection_id", None), str,
                                         "callback_query.message.business_connection_id") or "",
    )  # fmt: skip


def _from_business(update_id: int, kind: str, update: Update) -> IncomingUpdate:
    if update.business_connection is not None:
        return IncomingUpdate(
            update_id=update_id, kind=kind, business_connection=_business_connection(update.business_connection)
        )
    if update.deleted_business_messages is not None:
        deleted: BusinessMessagesDeleted = update.deleted_business_messages
        chat_id, chat_type = _chat(deleted.chat, "deleted_business_messages.chat")
        ids = tuple(_required(m, int, "deleted_business_messages.message_ids[]") for m in deleted.message_ids or ())
        return IncomingUpdate(
            update_id=update_id, kind=kind, chat_id=chat_id, chat_type=chat_type, deleted_message_ids=ids,
            business_connection_id=_required(deleted.business_connection_id, str, f"{kind}.business_connection_id"),
        )  # fmt: skip
    message = update.business_message or update.edited_business_message
    if message is None:
        return IncomingUpdate(update_id=update_id, kind="ignored")
    incoming = _from_message(update_id, message)
    return replace(
        incoming, kind=kind, command=None, command_args="",  # a customer writes to a business, not to a bot
        business_connection_id=_required(message.business_connection_id, str, f"{kind}.business_connection_id"),
        sent_by_business_bot=message.sender_business_bot is not None,
    )  # fmt: skip


def _business_connection(connection: TelegramBusinessConnection) -> BusinessConnectionInfo:
    owner = _sender(connection.user, "business_connection.user")
    if owner is None:
        raise MalformedUpdate("business_connection.user is missing")
    rights = connection.rights.to_dict() if connection.rights is not None else {}
    legacy = connection.api_kwargs.get("can_reply")  # before Bot API 9.0 the one right was a field of its own
    if connection.rights is None and isinstance(legacy, bool):
        rights = {"can_reply": legacy}
    date = connection.date
    return BusinessConnectionInfo(
        id=_required(connection.id, str, "business_connection.id"),
        owner=owner,
        user_chat_id=_required(connection.user_chat_id, int, "business_connection.user_chat_id"),
        date=int(date.timestamp()) if date is not None else 0,
        is_enabled=_required(connection.is_enabled, bool, "business_connection.is_enabled"),
        rights={key: True for key, value in rights.items() if key.startswith("can_") and value is True},
    )


def _chat(chat: TelegramChat | None, field: str) -> tuple[int, str]:
    if chat is None:
        raise MalformedUpdate(f"{field} is missing")
    # ChatType is a str enum; str() gives its plain value, and unknown future types stay as sent.
    return _required(chat.id, int, f"{field}.id"), str(_required(chat.type, str, f"{field}.type"))


def _sender(user: User | None, field: str) -> Sender | None:
    if user is None:  # e.g. an anonymous group admin posting as the group
        return None
    return Sender(
        user_id=_required(user.id, int, f"{field}.id"),
        username=_optional(user.username, str, f"{field}.username") or "",
        first_name=_optional(user.first_name, str, f"{field}.first_name") or "",
        last_name=_optional(user.last_name, str, f"{field}.last_name") or "",
        language_code=_optional(user.language_code, str, f"{field}.language_code") or "",
        is_bot=_required(user.is_bot, bool, f"{field}.is_bot"),
    )


def _files(message: Message) -> tuple[FileRef, ...]:
    refs = []
    if message.photo:  # Telegram sends every size it made of one photo: the largest is the photo
        refs.append(_file_ref("photo", max(message.photo, key=_photo_area)))
    for kind in FILE_KINDS[1:]:
        attachment = getattr(message, kind)
        # Telegram repeats an animation (GIF) as a document for old clients: keep it once.
        if attachment is None or (kind == "document" and message.animation is not None):
            continue
        refs.append(_file_ref(kind, attachment))
    return tuple(refs)


def _photo_area(size: PhotoSize) -> tuple[int, int]:
    width = _required(size.width, int, "photo.width")
    height = _required(size.height, int, "photo.height")
    return width * height, _optional(size.file_size, int, "photo.file_size") or 0


def _file_ref(kind: str, attachment: Any) -> FileRef:
    return FileRef(
        kind=kind,
        file_id=_required(attachment.file_id, str, f"{kind}.file_id"),
        file_unique_id=_required(attachment.file_unique_id, str, f"{kind}.file_unique_id"),
        file_name=_optional(getattr(attachment, "file_name", None), str, f"{kind}.file_name") or "",
        mime_type=_optional(getattr(attachment, "mime_type", None), str, f"{kind}.mime_type") or "",
        file_size=_optional(attachment.file_size, int, f"{kind}.file_size"),
        duration=_duration(attachment, kind),
    )


def _duration(attachment: Any, kind: str) -> int | None:
    # python-telegram-bot 22 warns that `duration` will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = getattr(attachment, "duration", None)
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return _optional(value, int, f"{kind}.duration")


def _contact(contact: Contact | None) -> SharedContact | None:
    if contact is None:
        return None
    return SharedContact(
        phone_number=_required(contact.phone_number, str, "contact.phone_number"),
        first_name=_optional(contact.first_name, str, "contact.first_name") or "",
        last_name=_optional(contact.last_name, str, "contact.last_name") or "",
        user_id=_optional(contact.user_id, int, "contact.user_id"),
    )


def _command(text: str) -> tuple[str | None, str]:
    match = _COMMAND.match(text)
    if match is None:
        return None, ""
    return f"/{match['name'].lower()}", text[match.end() :].strip()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not an id


def _required(value: object, expected: type[T], field: str) -> T:
    if value is None:
        raise MalformedUpdate(f"{field} is missing")
    return _optional(value, expected, field)  # type: ignore[return-value]  # not None here


def _optional(value: object, expected: type[T], field: str) -> T | None:
    if value is None:
        return None
    valid = _is_int(value) if expected is int else isinstance(value, expected)
    if not valid:
        raise MalformedUpdate(f"{field} must be {expected.__name__}, not {type(value).__name__}")
    return value  # type: ignore[return-value]  # checked just above
