"""Where Telegram drafts are unavailable, the answer streams into an ordinary message that is edited.

The fallback of `bots/reply_drafts.py` for a Bot API server without `sendMessageDraft` (404) or a chat
that refuses drafts (400). The preview is one message, posted silently (`disable_notification`) with the
first text and then edited (`editMessageText`) at most once every EDIT_INTERVAL_SECONDS; a 429 defers the
next edit by its `retry_after` (beyond EDIT_MAX_WAIT_SECONDS the preview stops where it is).

The preview is never the reply. Its message id is stored on the turn (`Turn.preview_message_id`) as soon
as it is posted; the reply is still the one `sendMessage` of the turn's delivery (the outbox, with its
claim, splitting, keyboards and 429 policy), and once the reply is out the preview is deleted
(`reply_preview_remove`). So the notification the user gets carries the complete answer, and exactly one
complete reply stays in the chat:
- a worker killed mid-stream leaves the preview (marked as unfinished with a trailing "…"); the turn is
  composed again and its stream edits the same stored message, then the reply is sent and the preview
  deleted;
- the reply failing for good (blocked, refused) or with an unknown outcome also deletes the preview, so a
  half answer never stands in for the reply; a reply deferred for a retry keeps its preview until it goes.
Editing the preview into the reply instead would save one message but make the reply an edit: no reply
keyboards, no split across messages, and a crash between the last edit and its record would leave the
outbox unable to tell whether the chat holds the whole answer or half of it.
"""

import asyncio
import logging
import warnings

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.warnings import PTBDeprecationWarning

from bots.event_loop import in_db
from bots.models import Chat, Turn
from bots.telegram_client import bot_for_token
from bots.telegram_outbox import SendError, call_with_policy_async
from core.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

# Telegram allows about one message a second per chat; edits count too.
EDIT_INTERVAL_SECONDS = 1.5
EDIT_MAX_WAIT_SECONDS = 30.0
EDIT_REQUEST_TIMEOUT_SECONDS = 10.0
TEXT_LIMIT = 4096
UNFINISHED = " …"


def preview_text(text: str) -> str:
    """The preview's text: what is written so far, marked as unfinished (within one message)."""
    return text[: TEXT_LIMIT - len(UNFINISHED)] + UNFINISHED


class EditedPreview:
    """Posts the preview message once, then edits it; `show` answers how long to wait before the next one."""

    def __init__(self, *, project: Project, chat: Chat, turn: Turn | None) -> None:
        self._project, self._chat, self._turn = project, chat, turn
        self.message_id: int | None = turn.preview_message_id if turn is not None else None
        self.updates = 0  # posts and edits Telegram accepted

    async def show(self, text: str) -> float | None:
        """Post or edit once; the seconds to wait before the next update, or None when the preview stops."""
        bot = bot_for_token(self._project.bot_token)
        chat_id, body = self._chat.telegram_chat_id, preview_text(text)
        try:
            async with asyncio.timeout(EDIT_REQUEST_TIMEOUT_SECONDS):
                if self.message_id is None:
                    message = await bot.send_message(chat_id=chat_id, text=body, disable_notification=True)
                    await self._record(message.message_id)
                else:
                    await bot.edit_message_text(chat_id=chat_id, message_id=self.message_id, text=body)
        except RetryAfter as exc:
            seconds = _retry_after_seconds(exc)
            self._log(f"rate limited, next update in {seconds:g} s", exc)
            return seconds if seconds <= EDIT_MAX_WAIT_SECONDS else None
        except BadRequest as exc:  # before NetworkError, of which it is a subclass
            if "not modified" in str(exc).lower():  # it shows this text already
                self.updates += 1
                return EDIT_INTERVAL_SECONDS
            self._log("refused, no more preview for this turn", exc)
            return None
        except Forbidden as exc:
            self._log("refused, no more preview for this turn", exc)
            return None
        except (TimedOut, TimeoutError) as exc:
            if self.message_id is None:  # it may have been posted without our knowing its id: post no second
                self._log("got no answer, no more preview for this turn", exc)
                return None
            self._log("not delivered, skipped", exc)
            return EDIT_INTERVAL_SECONDS
        except NetworkError as exc:
            self._log("not delivered, skipped", exc)
            return EDIT_INTERVAL_SECONDS
        except Exception as exc:  # a preview must never fail a turn
            self._log("failed, no more preview for this turn", exc)
            return None
        self.updates += 1
        return EDIT_INTERVAL_SECONDS

    async def _record(self, message_id: int) -> None:
        self.message_id = message_id
        if self._turn is not None:
            self._turn.preview_message_id = message_id
            await in_db(_preview_store, self._turn.pk, message_id)

    def _log(self, what: str, exc: BaseException) -> None:
        extra = {"project_id": self._project.pk, "chat_id": self._chat.telegram_chat_id}
        logger.info("reply preview %s: %s", what, redact(f"{type(exc).__name__}: {exc}"), extra=extra)


def _retry_after_seconds(exc: RetryAfter) -> float:
    # python-telegram-bot 22 warns that `retry_after` will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return float(value) if isinstance(value, int | float) else value.total_seconds()


def _preview_store(turn_id: int, message_id: int) -> None:
    Turn.objects.filter(pk=turn_id).update(preview_message_id=message_id)


def _preview_forget(turn_id: int) -> None:
    Turn.objects.filter(pk=turn_id).update(preview_message_id=None)


async def reply_preview_remove(*, turn: Turn) -> None:
    """Delete the turn's streamed preview, if it has one (best effort: a failure is logged, and retried by
    the turn's next delivery attempt while the id is kept)."""
    message_id = turn.preview_message_id
    if message_id is None:
        return
    try:
        await call_with_policy_async(project=turn.project, chat=turn.chat, method_name="delete_message",
                                     message_id=message_id)  # fmt: skip
    except SendError as exc:
        extra = {"project_id": turn.project_id, "chat_id": turn.chat.telegram_chat_id, "turn_id": turn.pk}
        if "not found" not in str(exc).lower():  # gone already (a user may delete it): nothing to retry
            logger.warning("reply preview not deleted: %s", exc, extra=extra)
            return
    turn.preview_message_id = None
    await in_db(_preview_forget, turn.pk)
