"""Everything the engine sends to Telegram goes through one error policy.

- `RetryAfter` (429): wait the time Telegram asks for, then resend the same request (a few times).
- `Forbidden` (403): the user blocked the bot (or it was removed from a group): the chat is marked
  blocked and nothing more is sent to it.
- `BadRequest` (400) and the other client errors: permanent, resending cannot help.
- `TimedOut`: the request may have reached Telegram, so it is never resent blindly; the caller learns
  that the outcome is unknown. Only failures that prove the request never left (connection refused, no
  free connection in the pool) and error answers from Telegram (502 ...) are retried, with a short backoff.

Error texts pass through the log redaction, so a token can never ride along in a SendError.

The policy is a coroutine (`call_with_policy_async`, `send_text_async`): a turn awaiting Telegram holds
no thread. The synchronous names run it on the process loop for synchronous callers (CRM, broadcasts).
"""

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone
from telegram import Bot, ForceReply, InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning

from bots.business_connections import business_send_refusal
from bots.event_loop import in_db, pause, process_loop, run_sync
from bots.models import Chat
from bots.telegram_client import bot_for_token
from bots.text_split import split_message
from core.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

MAX_RATE_LIMIT_RETRIES = 3
# A longer flood wait would park a worker for minutes: fail instead and let the caller decide.
MAX_RETRY_AFTER_SECONDS = 60.0
NETWORK_RETRY_BACKOFF_SECONDS = (1.0, 3.0)  # one wait per retry, so at most two retries
CHAT_ACTION_TIMEOUT_SECONDS = 10.0
# A request that finds every connection of the process's pool busy waits again (each wait is one
# TELEGRAM_POOL_TIMEOUT_SECONDS) for up to this long before the send counts as failed (the sweep resends).
POOL_WAIT_MAX_SECONDS = 120.0
# httpx failures that prove the request never reached Telegram, so resending cannot duplicate it.
_NOT_SENT_CAUSES = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_ARRIVED = "got no answer; it may have arrived, so it is not resent"

sleep = asyncio.sleep  # module level so tests can record the waits instead of sleeping


@dataclass(frozen=True)
class SentMessage:
    message_id: int


class SendError(RuntimeError):
    """A message was not delivered, or may not have been; the text is safe to log (no token)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))
        # For a multi-part text: the parts that did arrive before the failure.
        self.sent: tuple[SentMessage, ...] = ()


class ChatBlocked(SendError):
    """Telegram answered Forbidden: the chat is marked blocked and nothing more is sent to it."""


class PermanentSendError(SendError):
    """Telegram refused the request (BadRequest and the like); resending the same request cannot help."""


class SendOutcomeUnknown(SendError):
    """The request timed out after it may have reached Telegram; it is never resent automatically."""


@dataclass(frozen=True)
class _Call:
    """One Bot method call and what its log lines and errors say about it."""

    project: Project
    chat: Chat | None
    method_name: str
    chat_id: int | str | None

    @property
    def log_extra(self) -> dict[str, Any]:
        return {"project_id": self.project.pk, "chat_id": self.chat_id}

    def describe(self, what: str, exc: BaseException | None = None) -> str:
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        return redact(f"{self.method_name} to chat {self.chat_id} {what}{detail}")


def send_text(
    *,
    project: Project,
    chat: Chat,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    parse_mode: str | None = None,
) -> list[SentMessage]:
    """`send_text_async` from synchronous code."""
    return run_sync(
        send_text_async(project=project, chat=chat, text=text, reply_markup=reply_markup, parse_mode=parse_mode)
    )


async def send_text_async(
    *,
    project: Project,
    chat: Chat,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    parse_mode: str | None = None,
) -> list[SentMessage]:
    """Send a reply, split into Telegram-sized parts in order; the keyboard goes on the last part.

    Blank text sends nothing. On failure the SendError's `sent` holds the parts that did arrive.
    The split does not know about markup: with `parse_mode`, keep replies under the limit or tag-free.
    """
    _refuse_if_blocked(project, chat)
    parts = split_message(text)
    markup = _reply_markup(project, chat, reply_markup)
    sent: list[SentMessage] = []
    for index, part in enumerate(parts):
        is_last = index == len(parts) - 1
        try:
            message = await call_with_policy_async(
                project=project,
                chat=chat,
                method_name="send_message",
                text=part,
                parse_mode=parse_mode,
                reply_markup=markup if is_last else None,
            )
        except SendError as exc:
            exc.sent = tuple(sent)
            raise
        sent.append(SentMessage(message_id=message.message_id))
    return sent


def send_chat_action(*, project: Project, chat: Chat, action: str = "typing") -> None:
    """`send_chat_action_async` from synchronous code."""
    run_sync(send_chat_action_async(project=project, chat=chat, action=action), timeout=CHAT_ACTION_TIMEOUT_SECONDS + 1)


async def send_chat_action_async(*, project: Project, chat: Chat, action: str = "typing") -> None:
    """Best effort: a missing "typing..." bubble must never fail a turn, so this never raises.

    It touches no database; a block shows up on the next real send.
    """
    if chat.blocked_at is not None:
        return
    try:
        bot = bot_for_token(project.bot_token)
        business = {"business_connection_id": chat.business_connection_id} if chat.business_connection_id else {}
        # The request's own timeouts end it (a cancelled request can leak its connection: TypingIndicator);
        # the outer bound (asyncio.timeout: wait_for can swallow a cancellation) only catches a hang elsewhere.
        timeouts = dict.fromkeys(("pool_timeout", "connect_timeout", "read_timeout", "write_timeout"),
                                 CHAT_ACTION_TIMEOUT_SECONDS / 2)  # fmt: skip
        async with asyncio.timeout(4 * CHAT_ACTION_TIMEOUT_SECONDS):
            await bot.send_chat_action(chat_id=chat.telegram_chat_id, action=action, **business, **timeouts)
    except Exception as exc:
        extra = {"project_id": project.pk, "chat_id": chat.telegram_chat_id}
        logger.info("chat action %s failed: %s", action, redact(f"{type(exc).__name__}: {exc}"), extra=extra)


class TypingIndicator:
    """Shows "typing..." while the model works: at once, then every `interval` seconds until exit.

    An asyncio task on the turn's loop (no thread). Telegram shows an action for about 5 seconds, hence
    the 4 s default. Exiting never holds the reply back, and never cancels an action in flight: it ends
    on its own timeouts. A request cancelled while it waits for a pooled connection can leak that
    connection for good (httpcore 1.0.9, encode/httpcore#1093); under hundreds of turns a cancelled
    action per turn used the whole pool up, and every later send of the process failed.
    """

    def __init__(self, *, project: Project, chat: Chat, interval: float = 4.0) -> None:
        self._project, self._chat, self._interval = project, chat, interval
        self._task: asyncio.Task[None] | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None

    async def __aenter__(self) -> "TypingIndicator":
        self._task = asyncio.create_task(self._run(), name="switchboard-typing")
        _lingering.add(self._task)  # referenced until done: exit does not wait for it
        self._task.add_done_callback(_lingering.discard)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping()

    # From synchronous code: the same task on the process loop.
    def __enter__(self) -> "TypingIndicator":
        self._future = asyncio.run_coroutine_threadsafe(self._run(), process_loop())
        return self

    def __exit__(self, *exc_info: object) -> None:
        process_loop().call_soon_threadsafe(self._stopping)

    def _stopping(self) -> None:
        self._stop = self._stop or asyncio.Event()
        self._stop.set()

    async def _run(self) -> None:
        self._stop = self._stop or asyncio.Event()
        while not self._stop.is_set():
            await send_chat_action_async(project=self._project, chat=self._chat)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)


_lingering: set[asyncio.Task[None]] = set()


def call_with_policy(*, project: Project, chat: Chat | None, method_name: str, **kwargs: Any) -> Any:
    """`call_with_policy_async` from synchronous code."""
    return run_sync(call_with_policy_async(project=project, chat=chat, method_name=method_name, **kwargs))


async def call_with_policy_async(*, project: Project, chat: Chat | None, method_name: str, **kwargs: Any) -> Any:
    """Call one Bot method (`send_message`, `send_document`, ...) under the error policy; its result.

    `chat` is the user's Chat (its `chat_id` is filled in unless given), or None for a target that is
    not a Chat row, such as a CRM group: then Forbidden raises ChatBlocked without marking anything.
    """
    if chat is not None:
        kwargs.setdefault("chat_id", chat.telegram_chat_id)
        _refuse_if_blocked(project, chat)
    call = _Call(project=project, chat=chat, method_name=method_name, chat_id=kwargs.get("chat_id"))
    if chat is not None and chat.business_connection_id and kwargs["chat_id"] == chat.telegram_chat_id:
        await _business_connection_check(call, chat, kwargs)
    bot = bot_for_token(project.bot_token)
    rate_limited = network_failures = pool_waits = 0
    while True:
        try:
            return await _call_once(getattr(bot, method_name), kwargs)
        except RetryAfter as exc:
            rate_limited += 1
            await _wait_out_rate_limit(call, exc, rate_limited)
        except Forbidden as exc:
            await in_db(_chat_mark_blocked, call, exc)
            raise ChatBlocked(call.describe("refused: the bot is blocked", exc)) from exc
        except BadRequest as exc:  # before NetworkError, of which it is a subclass
            raise _failure(PermanentSendError, call, "refused", exc) from exc
        except TimedOut as exc:  # before NetworkError, of which it is a subclass
            if isinstance(exc.__cause__, httpx.PoolTimeout):
                # This process's own connections were all busy (hundreds of turns sending at once): the
                # request never left, and waiting again is no failure of Telegram's.
                pool_waits += 1
                _wait_for_a_connection(call, exc, pool_waits)
                continue
            if not _never_sent(exc):
                raise _failure(SendOutcomeUnknown, call, _MAYBE_ARRIVED, exc) from exc
            network_failures += 1
            await _back_off(call, exc, network_failures)
        except NetworkError as exc:
            if not (_never_sent(exc) or _answered_by_telegram(exc)):  # the connection broke after sending
                raise _failure(SendOutcomeUnknown, call, _MAYBE_ARRIVED, exc) from exc
            network_failures += 1
            await _back_off(call, exc, network_failures)
        except TimeoutError as exc:  # our own guard deadline: the request may be in flight
            raise _failure(SendOutcomeUnknown, call, _MAYBE_ARRIVED, exc) from exc
        except TelegramError as exc:  # InvalidToken, ChatMigrated, Conflict, ...: not fixed by resending
            raise _failure(PermanentSendError, call, "refused", exc) from exc


@cache
def _takes_business_connection(method_name: str) -> bool:
    method = getattr(Bot, method_name, None)
    return method is not None and "business_connection_id" in inspect.signature(method).parameters


async def _business_connection_check(call: _Call, chat: Chat, kwargs: dict[str, Any]) -> None:
    """A business chat is reached only through its connection, and only while it grants the bot `can_reply`.

    Without the connection, the same chat id would be the customer's chat with the bot itself: a method that
    takes no `business_connection_id` (forwardMessage, copyMessage, ...) is refused rather than sent there.
    """
    if not _takes_business_connection(call.method_name):
        raise _failure(PermanentSendError, call, "refused", ValueError("not available in a business chat"))
    kwargs.setdefault("business_connection_id", chat.business_connection_id)
    refusal = await in_db(business_send_refusal, project_id=call.project.pk, connection_id=chat.business_connection_id)
    if refusal is not None:
        raise _failure(PermanentSendError, call, "refused", PermissionError(refusal))


async def _call_once(method: Any, kwargs: dict[str, Any]) -> Any:
    # python-telegram-bot enforces the request timeouts; this guard only bounds a hang elsewhere (pool,
    # loop). A file upload gets at least 20 s per phase from python-telegram-bot, hence the floor.
    guard = 4 * max(settings.TELEGRAM_REQUEST_TIMEOUT_SECONDS, 20.0) + 5
    # The timeout cancels the request on the loop itself, so nothing keeps running after we give up (and,
    # unlike wait_for on Python 3.11, it never swallows a cancellation of the turn).
    async with asyncio.timeout(guard):
        return await method(**kwargs)


def _refuse_if_blocked(project: Project, chat: Chat) -> None:
    if chat.blocked_at is not None:
        extra = {"project_id": project.pk, "chat_id": chat.telegram_chat_id}
        logger.info("not sending: the chat blocked the bot", extra=extra)
        raise ChatBlocked(f"chat {chat.telegram_chat_id} blocked the bot at {chat.blocked_at:%Y-%m-%d %H:%M}")


def _chat_mark_blocked(call: _Call, exc: Forbidden) -> None:
    logger.warning("%s", call.describe("refused: the bot is blocked", exc), extra=call.log_extra)
    chat = call.chat
    if chat is None:
        return
    now = timezone.now()
    # Conditional: the first worker to see the block records when it happened; later ones change nothing.
    Chat.objects.filter(pk=chat.pk, project_id=call.project.pk, blocked_at__isnull=True).update(blocked_at=now)
    chat.blocked_at = chat.blocked_at or now


async def _wait_out_rate_limit(call: _Call, exc: RetryAfter, attempt: int) -> None:
    seconds = _retry_after_seconds(exc)
    if attempt > MAX_RATE_LIMIT_RETRIES or seconds > MAX_RETRY_AFTER_SECONDS:
        raise _failure(SendError, call, f"rate limited {attempt} times (retry after {seconds:g} s)", exc) from exc
    logger.warning("%s", call.describe(f"rate limited: retrying in {seconds:g} s"), extra=call.log_extra)
    await pause(sleep, seconds)


def _retry_after_seconds(exc: RetryAfter) -> float:
    # python-telegram-bot 22 warns that `retry_after` will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, int | float) else value.total_seconds()


def _wait_for_a_connection(call: _Call, exc: TimedOut, waits: int) -> None:
    if waits * settings.TELEGRAM_POOL_TIMEOUT_SECONDS > POOL_WAIT_MAX_SECONDS:
        raise _failure(SendError, call, f"no free connection after {waits} waits", exc) from exc
    logger.warning("%s", call.describe("waited for a free connection; waiting again", exc), extra=call.log_extra)


async def _back_off(call: _Call, exc: NetworkError, failures: int) -> None:
    if failures > len(NETWORK_RETRY_BACKOFF_SECONDS):
        raise _failure(SendError, call, f"not accepted after {failures} tries", exc) from exc
    seconds = NETWORK_RETRY_BACKOFF_SECONDS[failures - 1]
    logger.warning("%s", call.describe(f"not accepted, retrying in {seconds:g} s", exc), extra=call.log_extra)
    await pause(sleep, seconds)


def _failure(error: type[SendError], call: _Call, what: str, exc: BaseException) -> SendError:
    """The error to raise for a failed call, logged once here with the project and chat ids."""
    message = call.describe(what, exc)
    logger.error("%s", message, extra=call.log_extra)
    return error(message)


def _never_sent(exc: TelegramError) -> bool:
    return isinstance(exc.__cause__, _NOT_SENT_CAUSES)


def _answered_by_telegram(exc: NetworkError) -> bool:
    """An error status from the server (502, 500, ...): python-telegram-bot raised it from the response.

    Such errors have no cause, or the failed parse of a non-JSON error page (itself a TelegramError).
    """
    return exc.__cause__ is None or isinstance(exc.__cause__, TelegramError)


def _reply_markup(project: Project, chat: Chat, markup: dict[str, Any] | None) -> Any:
    """A Bot API reply_markup dict as python-telegram-bot's object; a bad one fails before any send."""
    if markup is None:
        return None
    try:
        return _markup_from_json(markup)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        message = redact(f"invalid reply_markup for chat {chat.telegram_chat_id}: {type(exc).__name__}: {exc}")
        logger.error("%s", message, extra={"project_id": project.pk, "chat_id": chat.telegram_chat_id})
        raise PermanentSendError(message) from exc


def _markup_from_json(markup: dict[str, Any]) -> Any:
    if "inline_keyboard" in markup:
        return InlineKeyboardMarkup.de_json(markup, None)
    if "keyboard" in markup:
        return ReplyKeyboardMarkup.de_json(markup, None)
    if markup.get("remove_keyboard"):
        return ReplyKeyboardRemove(selective=markup.get("selective"))
    if markup.get("force_reply"):
        return ForceReply(
            selective=markup.get("selective"), input_field_placeholder=markup.get("input_field_placeholder")
        )
    raise ValueError(f"unknown keys {sorted(markup)}")
