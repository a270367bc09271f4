"""A fake Telegram Bot API server for tests: real HTTP, real Bot API JSON shapes, scripted failures.

Bots talk to it through python-telegram-bot exactly as they talk to Telegram::

    Bot(token, base_url=f"{fake.base_url}/bot", base_file_url=f"{fake.base_url}/file/bot")

Every request is recorded as a :class:`TelegramCall` (in arrival order, failed ones included) so tests can
assert on what a bot sent. Form values are decoded the way Telegram reads them: JSON objects/arrays become
Python objects, integer fields (``chat_id``, ``message_id``, ``offset``, ...) become ints, flag fields become
bools, and ``attach://name`` references are replaced by the uploaded :class:`UploadedFile`.

Telegram Business: ``connect_business`` makes a connection known (``getBusinessConnection`` answers it); a send
with ``business_connection_id`` is refused unless that connection is the bot's, enabled and grants
``can_reply``, and the message it makes is the business account's (``from`` the owner, ``sender_business_bot``
the bot, ``business_connection_id`` set), numbered in the business chat, not in the bot's chat with that user.

Pytest fixtures: ``fake_telegram_server`` (one server per session) and ``fake_telegram`` (the same server,
``reset()`` before each test).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# Hundreds of clients connect at once in the scale benchmark: a listen backlog beyond werkzeug's 128.
ThreadedWSGIServer.request_queue_size = 4096

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MEDIA_GROUP_RANGE = (2, 10)
MEDIA_KEYS = ("photo", "document", "video", "voice", "video_note", "audio", "animation")
MEDIA_METHODS = {"send" + kind.title().replace("_", ""): kind for kind in MEDIA_KEYS}  # sendPhoto, sendVideoNote, ...
_SCREEN = {"width": 640, "height": 360}
MEDIA_DIMENSIONS = {"video": _SCREEN, "animation": _SCREEN, "video_note": {"length": 240}}
CONTENT_KEYS = ("text", "caption", *MEDIA_KEYS)
TRUE_METHODS = (
    "setMyCommands", "deleteMyCommands", "setMyDescription", "setMyShortDescription", "setMyName",
    "setChatMenuButton", "setMessageReaction", "pinChatMessage", "unpinChatMessage", "leaveChat", "logOut", "close",
)  # fmt: skip
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
INT_KEYS = {
    "chat_id", "from_chat_id", "message_id", "user_id", "message_thread_id", "draft_id", "reply_to_message_id",
    "offset", "limit", "timeout", "duration", "width", "height", "length", "max_connections", "cache_time",
    "until_date",
}  # fmt: skip
BOOL_PREFIXES = ("disable_", "protect_", "drop_", "show_", "is_", "has_", "allow_", "supports_", "can_")
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user", 404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
}  # fmt: skip
_METHOD_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z0-9_]+)/?$")
_FILE_PATH = re.compile(r"^/file/bot(?P<token>[^/]+)/(?P<path>.+)$")


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional ResponseParameters."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status, self.description, self.parameters = status, description, parameters

    def body(self) -> dict[str, Any]:
        body = {"ok": False, "error_code": self.status, "description": self.description}
        return body | ({"parameters": self.parameters} if self.parameters else {})


@dataclass
class UploadedFile:
    name: str  # multipart field name (the ``attach://`` name for media groups)
    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class TelegramCall:
    method: str
    token: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    at: float
    failed_status: int | None = None  # HTTP status of an error answer, None when the call succeeded
    done: bool = False  # the answer has been produced (False while a scripted delay is running)
    result: Any = None  # what a successful call answered (the sent Message, True, ...)

    @property
    def ok(self) -> bool:
        return self.done and self.failed_status is None


@dataclass
class _Script:
    method: str
    token: str | None
    status: int | None
    description: str | None
    retry_after: int | None
    delay: float
    remaining: int

    def error(self) -> ApiError | None:
        if not self.status:
            return None
        retry_after = self.retry_after or (1 if self.status == 429 else None)
        default = DEFAULT_DESCRIPTIONS.get(self.status) or HTTPStatus(self.status).phrase
        default = f"Too Many Requests: retry after {retry_after}" if self.status == 429 else default
        return ApiError(self.status, self.description or default, {"retry_after": retry_after} if retry_after else None)


class _Request(Request):
    max_content_length = None
    max_form_memory_size = None
    max_form_parts = 10_000


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _decode(key: str, value: str) -> Any:
    if value[:1] in ("[", "{"):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, dict | list) else value
    if key in INT_KEYS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key.startswith(BOOL_PREFIXES) and value in ("true", "false", "True", "False"):
        return value.lower() == "true"
    return value


def _resolve(value: Any, files: dict[str, UploadedFile], used: set[str]) -> Any:
    if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
        used.add(value[9:])
        return files[value[9:]]
    if isinstance(value, dict):
        return {k: _resolve(v, files, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, files, used) for v in value]
    return value


def _parse(request: Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    params = {k: _decode(k, v) for k, v in request.args.items()}
    if request.is_json:
        body = request.get_json(silent=True)
        params.update(body if isinstance(body, dict) else {})
    else:
        params.update({k: _decode(k, v) for k, v in request.form.items()})
    files = {name: UploadedFile(name, f.filename, f.mimetype or None, f.read()) for name, f in request.files.items()}
    used: set[str] = set()
    params = _resolve(params, files, used)
    for name, upload in files.items():
        if name not in used:
            params.setdefault(name, upload)
    return params, files


def _visible_length(text: Any, parse_mode: Any) -> int:
    """Length as Telegram counts it: after HTML markup is parsed away, ignoring surrounding whitespace."""
    if not isinstance(text, str):
        return 0
    return len((html.unescape(re.sub(r"<[^>]+>", "", text)) if str(parse_mode).upper() == "HTML" else text).strip())


def _check_text(params: dict[str, Any]) -> str:
    if not (length := _visible_length(params.get("text"), params.get("parse_mode"))):
        raise ApiError(400, "Bad Request: message text is empty")
    if length > TEXT_LIMIT:
        raise ApiError(400, "Bad Request: message is too long")
    return params["text"]


def _check_caption(params: dict[str, Any]) -> None:
    if _visible_length(params.get("caption"), params.get("parse_mode")) > CAPTION_LIMIT:
        raise ApiError(400, "Bad Request: message caption is too long")


def _unique_id(file_id: str) -> str:
    return f"U{zlib.crc32(str(file_id).encode()):08x}"


def _inline_markup(markup: Any) -> dict[str, Any] | None:
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


class FakeTelegram:
    """A threaded fake Bot API server on 127.0.0.1 (OS-chosen port). See the module docstring."""

    def __init__(self, host: str = "127.0.0.1", max_poll_seconds: float = 1.0) -> None:
        self.host = host
        self.max_poll_seconds = max_poll_seconds
        self.base_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition(threading.RLock())
        self._handlers: dict[str, tuple[str, Callable[[TelegramCall], Any]]] = {}
        for name in dir(self):
            if name.startswith("_api_"):
                self._add_handler(name[5:], getattr(self, name))
        for name, kind in MEDIA_METHODS.items():
            self._add_handler(name, partial(self._send_media, kind))
        for name in TRUE_METHODS:
            self._add_handler(name, lambda call: True)
        self._clear()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeTelegram:
        if self._server is None:
            self._server = make_server(self.host, 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
            self.base_url = f"http://{self.host}:{self._server.server_port}"
            self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def reset(self) -> None:
        """Forget calls, scripts, bots, webhooks, blocked chats, updates, files and messages."""
        with self._cond:
            self._clear()
            self._cond.notify_all()

    def _clear(self) -> None:
        self._calls: list[TelegramCall] = []
        self._scripts: list[_Script] = []
        self._bots: dict[str, dict[str, Any]] = {}
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._blocked: set[tuple[str, int]] = set()
        self._updates: dict[str, list[dict[str, Any]]] = {}
        self._last_update_id: dict[str, int] = {}
        self._files: dict[str, tuple[str, bytes]] = {}
        self._messages: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._last_message_id: dict[tuple[str, int], int] = {}
        self._ids = itertools.count(1)  # file ids, media group ids
        self._forums: set[int] = set()  # supergroups with topics enabled (Telegram's "forum")
        self._topics: dict[tuple[int, int], dict[str, Any]] = {}  # (chat_id, message_thread_id) -> ForumTopic
        self._business: dict[tuple[str, str], dict[str, Any]] = {}  # (token, connection id) -> BusinessConnection

    # ----------------------------------------------------------------- test-side API

    def register_bot(
        self, token: str, username: str, bot_id: int | None = None, first_name: str = "Test Bot"
    ) -> dict[str, Any]:
        """Make ``token`` valid; returns the bot's User object (as getMe answers it)."""
        prefix = token.split(":", 1)[0]
        bot_id = bot_id or (int(prefix) if prefix.isdigit() else zlib.crc32(token.encode()) % 10**9 + 10**9)
        user = {
            "id": bot_id, "is_bot": True, "first_name": first_name, "username": username,
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
        }  # fmt: skip
        with self._cond:
            self._bots[token] = user
        return dict(user)

    def connect_business(
        self,
        token: str,
        connection_id: str,
        *,
        owner: dict[str, Any],
        can_reply: bool = True,
        is_enabled: bool = True,
        rights: dict[str, bool] | None = None,
    ) -> dict[str, Any]:
        """The owner connects (or reconfigures, or with ``is_enabled=False`` disconnects) the bot; returns the
        BusinessConnection object as Telegram sends it in a ``business_connection`` update."""
        granted = {"can_reply": can_reply, "can_read_messages": can_reply} | (rights or {})
        connection = {
            "id": connection_id, "user": owner, "user_chat_id": owner["id"], "date": int(time.time()),
            "is_enabled": is_enabled, "rights": {key: value for key, value in granted.items() if value},
        }  # fmt: skip
        with self._cond:
            self._business[(token, connection_id)] = connection
        return dict(connection)

    def block_chat(self, token: str, chat_id: int) -> None:
        with self._cond:
            self._blocked.add((token, int(chat_id)))

    def make_forum(self, chat_id: int) -> None:
        """Turn on topics in a supergroup: getChat says ``is_forum``, createForumTopic works there."""
        with self._cond:
            self._forums.add(int(chat_id))

    def delete_topic(self, chat_id: int, message_thread_id: int) -> None:
        """An admin deleted the topic: sends to its thread answer "message thread not found"."""
        with self._cond:
            self._topics.pop((int(chat_id), int(message_thread_id)), None)

    def topics(self, chat_id: int) -> dict[int, dict[str, Any]]:
        """The forum's live topics by message_thread_id (ForumTopic objects)."""
        with self._cond:
            return {thread: dict(topic) for (chat, thread), topic in self._topics.items() if chat == int(chat_id)}

    def stored_message(self, token: str, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The Message object the fake keeps for a chat (e.g. a topic's forum_topic_created service message)."""
        with self._cond:
            message = self._messages.get((token, int(chat_id), int(message_id)))
            return json.loads(json.dumps(message)) if message is not None else None

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        token: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` calls of ``method`` (optionally only for ``token``) answer with an error."""
        with self._cond:
            script = _Script(self._canonical(method), token, status, description, retry_after, delay, times)
            self._scripts.append(script)

    def delay_next(self, method: str, seconds: float, *, times: int = 1, token: str | None = None) -> None:
        """The next ``times`` calls of ``method`` are answered normally, but only after ``seconds``."""
        with self._cond:
            self._scripts.append(_Script(self._canonical(method), token, None, None, None, seconds, times))

    def push_update(self, token: str, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an Update for getUpdates; ``update_id`` is assigned when missing. Returns the queued update."""
        with self._cond:
            update = dict(update)
            last = self._last_update_id.get(token, 0)
            update.setdefault("update_id", last + 1)
            self._last_update_id[token] = max(last, update["update_id"])
            self._updates.setdefault(token, []).append(update)
            for message in (update.get(key) for key in ("message", "edited_message", "channel_post")):
                if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                    self._remember(token, message)
            self._cond.notify_all()
            return update

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        """Make ``file_id`` known to getFile; its bytes are served at /file/bot<token>/<file_path>."""
        file_path = file_path or f"documents/{file_id}"
        with self._cond:
            self._files[file_id] = (file_path, content)
        return file_path

    def webhook_info(self, token: str) -> dict[str, Any] | None:
        """What setWebhook recorded for ``token`` (url, secret_token, allowed_updates, ...), or None."""
        with self._cond:
            info = self._webhooks.get(token)
            return dict(info) if info else None

    @property
    def calls(self) -> list[TelegramCall]:
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str, token: str | None = None) -> list[TelegramCall]:
        method = self._canonical(method)
        with self._cond:
            return [c for c in self._calls if c.method == method and (token is None or c.token == token)]

    def drafts(self, token: str | None = None, chat_id: int | None = None) -> list[TelegramCall]:
        """The answered sendMessageDraft calls (optionally of one bot and chat), in arrival order."""
        calls = [c for c in self.calls_to("sendMessageDraft", token) if c.ok]
        return [c for c in calls if chat_id is None or c.params.get("chat_id") == chat_id]

    def chat_messages(self, token: str, chat_id: int) -> list[dict[str, Any]]:
        """The messages the bot's chat shows now (sent, edited, not deleted), in message_id order."""
        with self._cond:
            found = [dict(m) for (t, c, _), m in self._messages.items() if t == token and c == chat_id]
        return sorted(found, key=lambda message: message["message_id"])

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 10.0, token: str | None = None
    ) -> list[TelegramCall]:
        """Block until ``count`` calls of ``method`` have been answered; returns all answered ones."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := [c for c in self.calls_to(method, token) if c.done]) < count:
                if (remaining := deadline - time.monotonic()) <= 0:
                    received = ", ".join(f"{c.method}[{c.failed_status or 'ok'}]" for c in self._calls) or "nothing"
                    for_token = f" for token {token!r}" if token else ""
                    message = f"expected {count} call(s) to {method}{for_token} within {timeout}s, got {len(found)}"
                    raise AssertionError(f"{message}; received: {received}")
                self._cond.wait(remaining)
            return found

    # ----------------------------------------------------------------- HTTP plumbing

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _Request(environ)
        if match := _FILE_PATH.match(request.path):
            response = self._serve_file(match["token"], match["path"])
        elif match := _METHOD_PATH.match(request.path):
            response = self._serve_method(request, match["token"], match["method"])
        else:
            response = self._json(404, ApiError(404, "Not Found").body())
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def _serve_file(self, token: str, path: str) -> Response:
        with self._cond:
            if token not in self._bots:
                return self._json(401, ApiError(401, "Unauthorized").body())
            content = next((data for file_path, data in self._files.values() if file_path == path), None)
        if content is None:
            return self._json(404, ApiError(404, "Not Found").body())
        return Response(content, mimetype="application/octet-stream")

    def _serve_method(self, request: Request, token: str, name: str) -> Response:
        method, handler = self._handlers.get(name.lower(), (name, None))
        try:
            params, files = _parse(request)
        except Exception as exc:  # a malformed body is the client's fault: answer like Telegram would
            return self._json(400, ApiError(400, f"Bad Request: can't parse request: {exc}").body())
        call = TelegramCall(method, token, params, files, time.time())
        with self._cond:
            self._calls.append(call)
            script = self._take_script(method, token) if token in self._bots else None
        if script and script.delay:
            time.sleep(script.delay)
        with self._cond:
            status, body = 200, {"ok": True}
            try:
                if token not in self._bots:
                    raise ApiError(401, "Unauthorized")
                if handler is None:
                    raise ApiError(404, "Not Found: method not found")
                if script and (error := script.error()):
                    raise error
                body["result"] = handler(call)
            except ApiError as exc:
                status, body = exc.status, exc.body()
            except Exception as exc:
                logger.exception("fake Telegram failed on %s", method)
                status, body = 500, ApiError(500, f"Internal Server Error: fake failed: {exc!r}").body()
            call.failed_status = None if status == 200 else status
            call.result = body.get("result")
            call.done = True
            self._cond.notify_all()
            return self._json(status, body)

    def _add_handler(self, method: str, handler: Callable[[TelegramCall], Any]) -> None:
        self._handlers[method.lower()] = (method, handler)

    def _canonical(self, method: str) -> str:
        return self._handlers.get(method.lower(), (method, None))[0]

    def _take_script(self, method: str, token: str) -> _Script | None:
        for script in self._scripts:
            if script.method == method and script.token in (None, token):
                script.remaining -= 1
                if script.remaining <= 0:
                    self._scripts.remove(script)
                return script
        return None

    # ----------------------------------------------------------------- model helpers (called under the lock)

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        chat = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        return chat | ({"is_forum": True} if chat_id in self._forums else {})

    @staticmethod
    def _chat_id(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        if isinstance(value, str) and value.startswith("@") and len(value) > 1:
            return -(10**12 + zlib.crc32(value.lower().encode()))
        raise ApiError(400, "Bad Request: chat not found")

    def _target(self, call: TelegramCall) -> int:
        chat_id = self._chat_id(call.params.get("chat_id"))
        if (connection_id := call.params.get("business_connection_id")) is not None:
            connection = self._business.get((call.token, str(connection_id)))
            if connection is None or not connection["is_enabled"]:
                raise ApiError(400, "Bad Request: BUSINESS_CONNECTION_INVALID")
            if not connection["rights"].get("can_reply"):
                raise ApiError(400, "Bad Request: BUSINESS_CONNECTION_NOT_ALLOWED")
            return chat_id  # the business account's chat: the customer cannot have blocked the bot there
        if (call.token, chat_id) in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    @staticmethod
    def _space(call: TelegramCall) -> str:
        """Whose message ids: the bot's chats, or a business connection's chats (numbered apart)."""
        connection_id = call.params.get("business_connection_id")
        return call.token if connection_id is None else f"{call.token}#business:{connection_id}"

    def _remember(self, token: str, message: dict[str, Any]) -> dict[str, Any]:
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        self._messages[(token, chat_id, message_id)] = message
        key = (token, chat_id)
        self._last_message_id[key] = max(self._last_message_id.get(key, 0), message_id)
        return message

    def _topic_fields(self, call: TelegramCall, chat_id: int) -> dict[str, Any]:
        """The topic fields of a message sent with ``message_thread_id`` (none without one)."""
        thread_id = call.params.get("message_thread_id")
        if thread_id is None:
            return {}
        if not isinstance(thread_id, int) or (chat_id, thread_id) not in self._topics:
            raise ApiError(400, "Bad Request: message thread not found")
        return {"message_thread_id": thread_id, "is_topic_message": True}

    def _new_message(self, call: TelegramCall, chat_id: int, content: dict[str, Any]) -> dict[str, Any]:
        thread = self._topic_fields(call, chat_id)
        space = self._space(call)
        message_id = self._last_message_id.get((space, chat_id), 0) + 1
        message = {
            "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
            "from": self._bots[call.token], **thread, **content,
        }  # fmt: skip
        if (connection_id := call.params.get("business_connection_id")) is not None:
            connection = self._business[(call.token, str(connection_id))]
            message |= {"from": connection["user"], "sender_business_bot": self._bots[call.token],
                        "business_connection_id": str(connection_id)}  # fmt: skip
        if markup := _inline_markup(call.params.get("reply_markup")):
            message["reply_markup"] = markup
        return dict(self._remember(space, message))

    def _media(self, kind: str, value: Any, params: dict[str, Any]) -> Any:
        """The Bot API object (PhotoSize list, Document, Video, ...) for an uploaded file or a file_id/URL."""
        if isinstance(value, UploadedFile):  # uploaded: store the bytes so getFile + download work
            number = next(self._ids)
            suffix = re.search(r"\.\w+$", value.filename or "")
            file_id = f"{kind}-{number}"
            self._files[file_id] = (f"{kind}s/file_{number}{suffix[0] if suffix else ''}", value.content)
            obj: dict[str, Any] = {"file_id": file_id, "file_size": len(value.content)}
            if kind in ("document", "audio", "video", "animation"):
                obj |= {"file_name": value.filename, "mime_type": value.content_type}
        elif isinstance(value, str) and value.startswith("attach://"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media not found")
        elif isinstance(value, str) and value:  # a file_id or an HTTP URL
            obj = {"file_id": value}
        else:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        obj = {k: v for k, v in obj.items() if v is not None} | {"file_unique_id": _unique_id(obj["file_id"])}
        duration = params["duration"] if isinstance(params.get("duration"), int) else 1
        if kind == "photo":
            return [obj | {"width": 320, "height": 240}]
        return obj if kind == "document" else obj | MEDIA_DIMENSIONS.get(kind, {}) | {"duration": duration}

    def _message_ref(self, call: TelegramCall) -> dict[str, Any]:
        """The stored message named by chat_id + message_id (created if the fake never saw it)."""
        chat_id = self._target(call)
        message_id = call.params.get("message_id")
        if not isinstance(message_id, int):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        stored = self._messages.get((self._space(call), chat_id, message_id))
        if stored is None:
            stored = {"message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id)}
            stored = self._remember(self._space(call), stored | {"from": self._bots[call.token]})
        return stored

    def _edit(self, call: TelegramCall, changes: dict[str, Any], drop: Iterable[str] = ()) -> Any:
        if call.params.get("inline_message_id"):
            return True
        message = self._message_ref(call)
        updated = {k: v for k, v in message.items() if k not in {*drop, "reply_markup", "edit_date"}} | changes
        if markup := _inline_markup(call.params.get("reply_markup")):
            updated["reply_markup"] = markup
        if updated == {k: v for k, v in message.items() if k != "edit_date"}:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly "
                "the same as a content and reply markup of the current message",
            )
        message.clear()
        message.update(updated, edit_date=int(time.time()))
        return dict(message)

    # ----------------------------------------------------------------- Bot API methods

    def _api_getMe(self, call: TelegramCall) -> Any:
        return self._bots[call.token]

    def _api_setWebhook(self, call: TelegramCall) -> Any:
        p = call.params
        url = p.get("url") or ""
        if url and not str(url).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if not url:
            return self._api_deleteWebhook(call)
        if p.get("drop_pending_updates"):
            self._updates[call.token] = []
        self._webhooks[call.token] = {
            "url": url, "secret_token": secret, "allowed_updates": p.get("allowed_updates"),
            "max_connections": p.get("max_connections"), "drop_pending_updates": bool(p.get("drop_pending_updates")),
        }  # fmt: skip
        return True

    def _api_deleteWebhook(self, call: TelegramCall) -> Any:
        self._webhooks.pop(call.token, None)
        if call.params.get("drop_pending_updates"):
            self._updates[call.token] = []
        return True

    def _api_getWebhookInfo(self, call: TelegramCall) -> Any:
        info = self._webhooks.get(call.token) or {}
        result = {
            "url": info.get("url", ""), "has_custom_certificate": False,
            "pending_update_count": len(self._updates.get(call.token, [])),
        }  # fmt: skip
        return result | {k: info[k] for k in ("allowed_updates", "max_connections") if info.get(k)}

    def _api_getUpdates(self, call: TelegramCall) -> Any:
        if self._webhooks.get(call.token):
            raise ApiError(
                409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                "the webhook first",
            )  # fmt: skip
        p = call.params
        offset, limit = p.get("offset"), p.get("limit") if isinstance(p.get("limit"), int) else 100
        queue = self._updates.setdefault(call.token, [])
        if isinstance(offset, int) and offset > 0:
            queue[:] = [u for u in queue if u["update_id"] >= offset]
        elif isinstance(offset, int) and offset < 0:
            queue[:] = queue[offset:]
        timeout = p.get("timeout") if isinstance(p.get("timeout"), int) else 0
        deadline = time.monotonic() + min(timeout, self.max_poll_seconds)
        while not (queue := self._updates.setdefault(call.token, [])) and (left := deadline - time.monotonic()) > 0:
            self._cond.wait(left)
        return queue[: max(1, min(limit, 100))]

    def _api_sendMessage(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        return self._new_message(call, chat_id, {"text": _check_text(call.params)})

    def _api_sendMessageDraft(self, call: TelegramCall) -> Any:
        """A streamed preview (Bot API 9.3+): private chats only, a non-zero draft_id, 0-4096 characters.

        Drafts are ephemeral: recorded as calls (``drafts()``), never stored as messages.
        """
        chat_id = self._target(call)
        if chat_id <= 0:
            raise ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        draft_id = call.params.get("draft_id")
        if not isinstance(draft_id, int) or isinstance(draft_id, bool) or draft_id == 0:
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        if _visible_length(call.params.get("text"), call.params.get("parse_mode")) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        return True

    def _send_media(self, kind: str, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        p = call.params
        _check_caption(p)
        content = {kind: self._media(kind, p.get(kind), p)}
        if kind != "video_note" and p.get("caption"):
            content["caption"] = p["caption"]
        return self._new_message(call, chat_id, content)

    def _api_sendMediaGroup(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        media = call.params.get("media")
        if not isinstance(media, list) or not MEDIA_GROUP_RANGE[0] <= len(media) <= MEDIA_GROUP_RANGE[1]:
            raise ApiError(400, "Bad Request: wrong number of media in the media group: must include 2-10 items")
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "video", "document", "audio"):
                raise ApiError(400, "Bad Request: can't parse InputMedia: media type is invalid")
            _check_caption(item)
        group_id = str(10**13 + next(self._ids))
        messages = []
        for item in media:
            content = {item["type"]: self._media(item["type"], item.get("media"), item), "media_group_id": group_id}
            if item.get("caption"):
                content["caption"] = item["caption"]
            messages.append(self._new_message(call, chat_id, content))
        return messages

    def _api_editMessageText(self, call: TelegramCall) -> Any:
        return self._edit(call, {"text": _check_text(call.params)}, drop=CONTENT_KEYS)

    def _api_editMessageMedia(self, call: TelegramCall) -> Any:
        media = call.params.get("media")
        if not isinstance(media, dict) or media.get("type") not in MEDIA_KEYS:
            raise ApiError(400, "Bad Request: can't parse InputMedia: media type is invalid")
        _check_caption(media)
        if not call.params.get("inline_message_id"):
            self._message_ref(call)  # validate chat/message before storing the new file
        changes = {media["type"]: self._media(media["type"], media.get("media"), media)}
        return self._edit(call, changes | ({"caption": media["caption"]} if media.get("caption") else {}), CONTENT_KEYS)

    def _api_editMessageReplyMarkup(self, call: TelegramCall) -> Any:
        return self._edit(call, {})

    def _api_deleteMessage(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        self._messages.pop((call.token, chat_id, call.params.get("message_id")), None)
        return True

    def _api_sendChatAction(self, call: TelegramCall) -> Any:
        self._target(call)
        if call.params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _copy_source(self, call: TelegramCall) -> dict[str, Any] | None:
        from_chat = self._chat_id(call.params.get("from_chat_id"))
        return self._messages.get((call.token, from_chat, call.params.get("message_id")))

    def _api_forwardMessage(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        source = self._copy_source(call)
        content = {k: v for k, v in (source or {}).items() if k in CONTENT_KEYS}
        if source and isinstance(source.get("from"), dict):
            origin = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        else:
            origin = {"type": "hidden_user", "sender_user_name": "Unknown", "date": int(time.time())}
        return self._new_message(call, chat_id, content | {"forward_origin": origin})

    def _api_copyMessage(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        content = {k: v for k, v in (self._copy_source(call) or {}).items() if k in CONTENT_KEYS}
        if "caption" in call.params:
            _check_caption(call.params)
            content["caption"] = call.params["caption"]
        return {"message_id": self._new_message(call, chat_id, content)["message_id"]}

    def _api_getBusinessConnection(self, call: TelegramCall) -> Any:
        connection = self._business.get((call.token, str(call.params.get("business_connection_id"))))
        if connection is None:
            raise ApiError(400, "Bad Request: BUSINESS_CONNECTION_INVALID")
        return dict(connection)

    def _api_answerCallbackQuery(self, call: TelegramCall) -> Any:
        if not call.params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return True

    def _api_getFile(self, call: TelegramCall) -> Any:
        file_id = call.params.get("file_id")
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self._files[file_id]
        return {"file_id": file_id, "file_unique_id": _unique_id(file_id), "file_size": len(content), "file_path": path}

    def _api_createForumTopic(self, call: TelegramCall) -> Any:
        """A new topic: its message_thread_id is the id of its forum_topic_created service message."""
        chat_id = self._target(call)
        if chat_id not in self._forums:
            raise ApiError(400, "Bad Request: the chat is not a forum")
        name = call.params.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise ApiError(400, "Bad Request: TOPIC_TITLE_EMPTY" if not name else "Bad Request: TOPIC_TITLE_TOO_LONG")
        icon_color = call.params.get("icon_color", 7322096)
        topic = {"name": name, "icon_color": int(icon_color) if str(icon_color).isdigit() else 7322096}
        message = self._new_message(call, chat_id, {"forum_topic_created": dict(topic)})
        thread_id = message["message_id"]
        stored = self._messages[(call.token, chat_id, thread_id)]
        stored.update(message_thread_id=thread_id, is_topic_message=True)
        self._topics[(chat_id, thread_id)] = topic | {"message_thread_id": thread_id}
        return dict(self._topics[(chat_id, thread_id)])

    def _api_editForumTopic(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        topic = self._topics.get((chat_id, call.params.get("message_thread_id")))  # type: ignore[arg-type]
        if topic is None:
            raise ApiError(400, "Bad Request: message thread not found")
        if isinstance(name := call.params.get("name"), str) and name:
            topic["name"] = name[:128]
        return True

    def _api_closeForumTopic(self, call: TelegramCall) -> Any:
        chat_id = self._target(call)
        if (chat_id, call.params.get("message_thread_id")) not in self._topics:
            raise ApiError(400, "Bad Request: message thread not found")
        return True

    def _api_getChat(self, call: TelegramCall) -> Any:
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"), False)
        chat = self._chat(self._target(call))
        gifts["gifts_from_channels"] = False
        return chat | {"accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}


# --------------------------------------------------------------------- pytest plugin


@pytest.fixture(scope="session")
def fake_telegram_server() -> Iterator[FakeTelegram]:
    """One fake Bot API server for the whole test session."""
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def fake_telegram(fake_telegram_server: FakeTelegram) -> FakeTelegram:
    """The session's fake Bot API server, reset for this test."""
    fake_telegram_server.reset()
    return fake_telegram_server
