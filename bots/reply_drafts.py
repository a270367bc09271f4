"""The answer as it is being written, shown in a private chat as a Telegram draft (`sendMessageDraft`).

A draft is only a preview: Telegram shows it for about 30 seconds and never keeps it, so the reply is still
the one `sendMessage` of the turn's delivery (the outbox), sent once the whole text is stored. A worker that
dies mid-stream leaves nothing in the chat; the turn is composed again and answered once.

The model's stream never waits for Telegram: the listener (`ReplyDraft.show`) only keeps the latest text,
and a task of the turn sends it, at most once every DRAFT_INTERVAL_SECONDS. Drafts are best effort:
- 429: the next update waits the `retry_after` Telegram asked for (longer than DRAFT_MAX_WAIT_SECONDS: the
  preview stops for this turn);
- the method unknown (404) or refused (400): the turn's preview goes on as an edited message instead
  (`bots/reply_edits.py`, throttled, deleted once the reply is out); a 404 also switches drafts off for the
  bot in this process for DRAFTS_OFF_SECONDS (a Bot API server without drafts), and its turns preview by
  edits from the start, as does a turn that already has a preview message (composed again after a crash);
- blocked (403) or any other failure: no more preview for this turn; the reply's delivery handles the rest;
- a timeout or a network failure: that update is skipped.
"""

import asyncio
import logging
import time
import warnings

from django.conf import settings
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from bots.models import Chat, Turn
from bots.reply_edits import EditedPreview
from bots.telegram_client import bot_for_token
from bots.text_split import split_message
from core.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

DRAFT_INTERVAL_SECONDS = 0.5
DRAFT_MAX_WAIT_SECONDS = 30.0
DRAFTS_OFF_SECONDS = 600.0
DRAFT_REQUEST_TIMEOUT_SECONDS = 10.0
# At the end, an update still in flight is awaited this long, so that it cannot land after the reply.
DRAFT_CLOSE_WAIT_SECONDS = 3.0
TEXT_LIMIT = 4096

# Bot tokens whose Bot API server does not know sendMessageDraft, until when (time.monotonic()).
_drafts_off_until: dict[str, float] = {}


def reply_draft_for(*, project: Project, chat: Chat, draft_id: int, turn: Turn | None = None) -> "ReplyDraft | None":
    """A draft for this turn's answer, or None where replies do not stream (setting, chat type, channel).

    Where drafts are off for the bot, or the turn has a preview message already, it previews by edits."""
    if not settings.TELEGRAM_STREAM_REPLIES or chat.channel != Chat.Channel.TELEGRAM or chat.chat_type != "private":
        return None
    if chat.business_connection_id:  # sendMessageDraft has no business_connection_id: it would reach another chat
        return None
    if chat.blocked_at is not None:
        return None
    edits = _drafts_off_until.get(project.bot_token, 0.0) > time.monotonic()
    edits = edits or (turn is not None and turn.preview_message_id is not None)
    return ReplyDraft(project=project, chat=chat, draft_id=draft_id, turn=turn, edits=edits)


def draft_preview(text: str) -> str:
    """What the draft shows: the text, or for an answer beyond one message, the part being written."""
    text = text.strip()
    return text if len(text) <= TEXT_LIMIT else split_message(text)[-1][:TEXT_LIMIT]


class ReplyDraft:
    """An async context around the model's answer: `show(text)` while it streams; exit before the reply."""

    def __init__(
        self, *, project: Project, chat: Chat, draft_id: int, interval: float = DRAFT_INTERVAL_SECONDS,
        turn: Turn | None = None, edits: bool = False,
    ) -> None:  # fmt: skip
        self._project, self._chat, self._draft_id, self._interval = project, chat, draft_id, interval
        self._turn = turn
        # The fallback where drafts are unavailable: an ordinary message, edited as the answer grows.
        self.edits = EditedPreview(project=project, chat=chat, turn=turn) if edits else None
        self._latest = ""
        self._shown = ""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: asyncio.Task[float | None] | None = None
        # Set on exit. Cancelling the task is not enough: on Python 3.11 `asyncio.wait_for` and some libraries
        # can swallow a cancellation that arrives as the awaited call completes, and the task would wait on.
        self._closed = False
        self.updates = 0  # drafts Telegram accepted

    def show(self, text: str) -> None:
        """The listener of the model's stream: keep the newest text; the task sends it when it may."""
        self._latest = text
        self._changed.set()

    async def __aenter__(self) -> "ReplyDraft":
        self._task = asyncio.create_task(self._run(), name="switchboard-reply-draft")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is None:
            return
        self._closed = True
        if self._sending is not None and not self._sending.done():
            await asyncio.wait({self._sending}, timeout=DRAFT_CLOSE_WAIT_SECONDS)
        self._task.cancel()
        self._changed.set()  # a task whose cancellation a library swallowed sees `_closed` and ends
        # Not `await task` (that would re-raise its cancellation here), and bounded: a preview that does not
        # end must never hold the reply back.
        _, unfinished = await asyncio.wait({self._task}, timeout=DRAFT_CLOSE_WAIT_SECONDS)
        if unfinished:
            self._log("did not stop, left behind", TimeoutError("the draft task ignored its cancellation"))

    async def _run(self) -> None:
        while not self._closed:
            await self._changed.wait()
            self._changed.clear()
            if self._closed:
                return
            text = draft_preview(self._latest)
            if not text or text == self._shown:
                continue
            self._sending = asyncio.create_task(self._update(text))
            # Shielded: closing cancels this task, never the request in flight, which ends on its own
            # timeouts (a request cancelled while it waits for a pooled connection can leak the connection).
            wait = await asyncio.shield(self._sending)
            if wait is None or self._closed:
                return
            await asyncio.sleep(max(self._interval, wait))

    async def _update(self, text: str) -> float | None:
        if self.edits is None:
            return await self._send(text)
        before = self.edits.updates
        wait = await self.edits.show(text)
        if self.edits.updates > before:
            self._shown = text
        else:
            self._changed.set()  # the text is still to show once the wait is over
        return wait

    def _fall_back_to_edits(self) -> float:
        self.edits = EditedPreview(project=self._project, chat=self._chat, turn=self._turn)
        self._changed.set()  # the text the draft did not show goes into the first edit
        return 0.0

    async def _send(self, text: str) -> float | None:
        """Send one update; the seconds to wait before the next one, or None when the preview stops."""
        bot = bot_for_token(self._project.bot_token)
        try:
            async with asyncio.timeout(DRAFT_REQUEST_TIMEOUT_SECONDS):  # not wait_for: see `_closed`
                await bot.send_message_draft(chat_id=self._chat.telegram_chat_id, draft_id=self._draft_id, text=text)
        except RetryAfter as exc:
            seconds = _retry_after_seconds(exc)
            self._log(f"rate limited, next update in {seconds:g} s", exc)
            self._changed.set()  # the text is still to show once the wait is over
            return seconds if seconds <= DRAFT_MAX_WAIT_SECONDS else None
        except (InvalidToken, EndPointNotFound) as exc:  # 404: this Bot API server has no drafts
            _drafts_off_until[self._project.bot_token] = time.monotonic() + DRAFTS_OFF_SECONDS
            self._log("unavailable, drafts off for this bot; previewing by edits", exc)
            return self._fall_back_to_edits()
        except BadRequest as exc:  # before NetworkError, of which it is a subclass
            self._log("refused, previewing by edits for this turn", exc)
            return self._fall_back_to_edits()
        except Forbidden as exc:
            self._log("refused, no preview for this turn", exc)
            return None
        except (NetworkError, TimeoutError) as exc:
            self._log("not delivered, skipped", exc)
            return 0.0
        except Exception as exc:  # a preview must never fail a turn
            self._log("failed, no preview for this turn", exc)
            return None
        self._shown = text
        self.updates += 1
        return 0.0

    def _log(self, what: str, exc: BaseException) -> None:
        extra = {"project_id": self._project.pk, "chat_id": self._chat.telegram_chat_id}
        logger.info("reply draft %s: %s", what, redact(f"{type(exc).__name__}: {exc}"), extra=extra)


def _retry_after_seconds(exc: RetryAfter) -> float:
    # python-telegram-bot 22 warns that `retry_after` will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return float(value) if isinstance(value, int | float) else value.total_seconds()
