"""One chat turn, from the unanswered messages to the reply that reached Telegram.

A turn's life: composing -> reply_ready -> sending -> sent (or silent / send_unknown / failed).
The reply is stored before it is sent and the turn is marked while sending, so a crash at any point
either redoes the composing, sends a stored reply, or (caught mid-send) reports instead of resending.
"""

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from bots.agent import AgentResult, agent_run_async
from bots.event_loop import in_db, run_sync
from bots.generations import generation_schedule, project_over_weekly_cap
from bots.kinds import toolset_for
from bots.llm.types import AllBackendsFailed, LLMMessage, block_from_json, block_to_json
from bots.models import Chat, Generation, Message, Turn
from bots.reply_drafts import reply_draft_for
from bots.reply_edits import reply_preview_remove
from bots.telegram_outbox import (
    ChatBlocked,
    PermanentSendError,
    SendError,
    SendOutcomeUnknown,
    TypingIndicator,
    send_text_async,
)
from bots.text_split import split_message
from bots.texts import LLM_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, in_language
from bots.toolsets import ToolContext, Toolset
from bots.turn_traces import agent_outcome, turn_trace_record, turn_trace_record_unanswered
from core import metrics
from core.db_reconnect import retried_after_lost_connection
from core.log_context import log_context_bind

logger = logging.getLogger(__name__)

HISTORY_TURNS = 40
# A reply Telegram keeps refusing for transient reasons (429 storms, outages) is retried by the sweep this long.
DELIVERY_GIVE_UP_AFTER = timedelta(hours=1)
REPLAYED_STATUSES = (Turn.Status.SENT, Turn.Status.SILENT, Turn.Status.SEND_UNKNOWN)
OPEN_STATUSES = (Turn.Status.COMPOSING, Turn.Status.REPLY_READY, Turn.Status.SENDING)
CAP_REACHED = "weekly cap reached"


class TurnFailed(RuntimeError):
    """The turn ended with an apology to the user; the generation is recorded as failed."""


def _log_extra(chat: Chat, **more: Any) -> dict[str, Any]:
    return {"project_id": chat.project_id, "chat_id": chat.telegram_chat_id, **more}


def unanswered_messages(chat: Chat) -> QuerySet[Message]:
    """In the user's order (Telegram's message_id), whatever order concurrent deliveries were stored in."""
    return chat.messages.filter(turn__isnull=True, needs_reply=True).order_by(
        F("telegram_message_id").asc(nulls_last=True), "pk"
    )


def describe_message(message: Message) -> str:
    """A message as the model reads it: its text plus a note of what was attached."""
    parts = [message.text.strip()] if message.text.strip() else []
    for file in message.files:
        if (heard := _speech_description(file, message.transcription)) is not None:
            parts.append(heard)
            continue
        name = f" '{file['file_name']}'" if file.get("file_name") else ""
        parts.append(f"[the user sent a {file['kind'].replace('_', ' ')}{name}]")
    if message.contact:
        parts.append("[the user shared their contact]")
    return "\n".join(parts)


SPEECH_NAMES = {"voice": "voice message", "video_note": "video note", "audio": "audio"}


def speech_length(seconds: object) -> str:
    """0:12, 12:05: how long a recording is, as the model and the lead transcript read it."""
    total = int(seconds) if isinstance(seconds, int | float) and seconds > 0 else 0
    return f"{total // 60}:{total % 60:02d}"


def _speech_description(file: dict[str, Any], transcription: dict[str, Any] | None) -> str | None:
    """A transcribed recording: `[voice message 0:12, transcribed] what was said` (None: not a transcription)."""
    if file.get("kind") not in SPEECH_NAMES or not transcription:
        return None
    name, length = SPEECH_NAMES[file["kind"]], speech_length(file.get("duration") or transcription.get("seconds"))
    if transcription.get("status") == "done":
        return f"[{name} {length}, transcribed] {transcription.get('text') or '(nothing audible)'}"
    if transcription.get("status") == "too_long":
        return f"[the user sent a {name} of {length}, too long to transcribe]"
    return None


def messages_to_json(messages: list[LLMMessage]) -> list[dict[str, Any]]:
    return [{"role": m.role, "blocks": [block_to_json(b) for b in m.blocks]} for m in messages]


def messages_from_json(data: list[dict[str, Any]]) -> list[LLMMessage]:
    return [LLMMessage(item["role"], tuple(block_from_json(b) for b in item["blocks"])) for item in data]


def chat_thread(*, chat: Chat, exclude_turn: Turn | None = None) -> list[LLMMessage]:
    """Earlier turns replayed for the model, with their tool-use and tool-result blocks."""
    turns = chat.turns.filter(status__in=REPLAYED_STATUSES)
    if exclude_turn is not None:
        turns = turns.exclude(pk=exclude_turn.pk)
    thread: list[LLMMessage] = []
    for turn in reversed(turns.order_by("-created_at", "-pk")[:HISTORY_TURNS]):
        if turn.user_text:
            thread.append(LLMMessage.user_text(turn.user_text))
        if turn.blocks:
            thread.extend(messages_from_json(turn.blocks))
        elif turn.reply:
            thread.append(LLMMessage.assistant_text(turn.reply))
    return thread


def turn_settle_interrupted_send(*, turn: Turn) -> bool:
    """A turn found `sending` by a new attempt: a worker died while sending, and Telegram may have the reply
    already. It is never resent blindly: marked `send_unknown` (True), or left alone if not sending (False)."""
    if turn.status != Turn.Status.SENDING:
        return False
    Turn.objects.filter(pk=turn.pk, status=Turn.Status.SENDING).update(
        status=Turn.Status.SEND_UNKNOWN, finished_at=timezone.now()
    )
    turn.status = Turn.Status.SEND_UNKNOWN
    logger.error("turn was interrupted while sending; not resent", extra=_log_extra(turn.chat, turn_id=turn.pk))
    return True


def turn_open(*, chat: Chat, generation: Generation | None) -> Turn | None:
    """Resume this chat's unfinished turn, or gather every unanswered message into a new one."""
    with transaction.atomic():
        Chat.objects.select_for_update().filter(pk=chat.pk).first()
        return _turn_open_locked(chat, generation)


def _turn_open_locked(chat: Chat, generation: Generation | None) -> Turn | None:
    """`turn_open` inside the transaction that holds the chat's row lock."""
    turn = chat.turns.filter(status__in=OPEN_STATUSES).order_by("-created_at").first()
    if turn is not None and turn_settle_interrupted_send(turn=turn):
        turn = None
    if turn is not None:
        return turn
    # A voice message still being transcribed waits for the next turn (the transcription comes first).
    messages = [message for message in unanswered_messages(chat) if not message.transcription_pending]
    if not messages:
        return None
    turn = Turn.objects.create(
        project_id=chat.project_id,
        chat=chat,
        generation=generation,
        trigger=Turn.Trigger.USER,
        user_text="\n\n".join(text for text in map(describe_message, messages) if text),
    )
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(turn=turn)
    return turn


def _debug_trace(result: AgentResult) -> str:
    tools = ", ".join(result.tools_called) or "none"
    return (
        f"\n\n[debug] model {result.model}, {result.round_trips} round-trip(s), tools: {tools}, "
        f"tokens {result.tokens_in} in / {result.tokens_out} out, ${result.cost_usd:.6f}"
        + (", loop overflow" if result.overflowed else "")
    )


def turn_compose(*, turn: Turn, generation_id: int | None, purpose: str = "chat_turn") -> bool:
    """`turn_compose_async` from synchronous code."""
    turn.chat, turn.project  # noqa: B018 - loaded here: the coroutine never touches the database itself
    return run_sync(turn_compose_async(turn=turn, generation_id=generation_id, purpose=purpose))


@dataclass
class _Composing:
    context: ToolContext
    toolset: Toolset
    thread: list[LLMMessage]


def _compose_begin(turn: Turn, purpose: str) -> _Composing | None:
    """Database part before the model: the cap, a reply without the model, the thread (None: reply stored)."""
    chat, project = turn.chat, turn.project
    if project_over_weekly_cap(project=project):
        reply = project.unavailable_reply.strip() or in_language(project, TEMPORARILY_UNAVAILABLE)
        _store_reply(turn, reply=reply, error=CAP_REACHED, outcome=Turn.Outcome.PAUSED)
        turn_trace_record_unanswered(turn=turn, purpose=purpose, error=CAP_REACHED)
        return None
    context = ToolContext(project=project, chat=chat, turn=turn)
    toolset = toolset_for(project)
    if (canned := toolset.reply_without_model(context)) is not None:
        _store_reply(turn, reply=canned, outcome=Turn.Outcome.CANNED)
        return None
    thread = [*chat_thread(chat=chat, exclude_turn=turn), LLMMessage.user_text(turn.user_text)]
    return _Composing(context=context, toolset=toolset, thread=thread)


def _compose_end(turn: Turn, composing: _Composing, result: AgentResult, purpose: str) -> None:
    chat = turn.chat
    reply = result.reply + (_debug_trace(result) if chat.debug and result.reply else "")
    markup = composing.toolset.reply_markup(composing.context, result.reply) if result.reply else None
    error = "; ".join(f"tool failed: {failure}" for failure in result.tool_failures)
    _store_reply(
        turn, reply=reply, blocks=messages_to_json(result.exchange), model=result.model, cost=result.cost_usd,
        markup=markup, error=error, outcome=agent_outcome(result=result, project=turn.project),
    )  # fmt: skip
    turn_trace_record(turn=turn, result=result, purpose=purpose)


async def turn_compose_async(*, turn: Turn, generation_id: int | None, purpose: str = "chat_turn") -> bool:
    """Have the agent write the reply (or a polite refusal) and store it, ready to send.

    Returns False when no LLM backend answered (the stored reply is then an apology).
    """
    chat, project = turn.chat, turn.project
    composing = await in_db(_compose_begin, turn, purpose)
    if composing is None:
        return True
    try:
        typing = TypingIndicator(project=project, chat=chat) if chat.channel == Chat.Channel.TELEGRAM else None
        # A private chat sees the answer as it is written; the draft closes before the reply is stored.
        draft = reply_draft_for(project=project, chat=chat, draft_id=turn.pk, turn=turn)
        async with typing or nullcontext(), draft or nullcontext():
            result = await agent_run_async(
                context=composing.context,
                toolset=composing.toolset,
                thread=composing.thread,
                generation_id=generation_id,
                purpose=purpose,
                on_text=draft.show if draft is not None else None,
            )
    except AllBackendsFailed as exc:
        logger.error("no LLM backend answered", extra=_log_extra(chat, turn_id=turn.pk))
        await in_db(_store_failed, turn, reply=in_language(project, LLM_UNAVAILABLE), error=str(exc), purpose=purpose)
        return False
    await in_db(_compose_end, turn, composing, result, purpose)
    return True


def _store_failed(turn: Turn, *, reply: str, error: str, purpose: str) -> None:
    """No model answered: the apology is stored as a failed turn, with a trace of the attempts."""
    _store_reply(turn, reply=reply, error=error, outcome=Turn.Outcome.LLM_FAILED)
    turn_trace_record_unanswered(turn=turn, purpose=purpose, error=error)


def _store_reply(turn: Turn, *, reply: str, outcome: str, error: str = "", **fields: Any) -> None:
    turn.reply, turn.error, turn.status, turn.outcome = reply, error[:2000], Turn.Status.REPLY_READY, outcome
    update = {"reply": reply, "error": turn.error, "status": turn.status, "outcome": outcome}
    if "blocks" in fields:
        update["blocks"] = turn.blocks = fields["blocks"]
    if "model" in fields:
        update["model"] = turn.model = fields["model"]
    if "cost" in fields:
        update["cost_usd"] = turn.cost_usd = fields["cost"]
    if fields.get("markup") is not None:
        update["reply_markup"] = turn.reply_markup = fields["markup"]
    if not Turn.objects.filter(pk=turn.pk, status=Turn.Status.COMPOSING).update(**update):
        turn.refresh_from_db()  # someone else moved the turn on: deliver what is stored, not what we wrote


def turn_deliver(*, turn: Turn) -> None:
    """`turn_deliver_async` from synchronous code."""
    turn.chat, turn.project  # noqa: B018 - loaded here: the coroutine never touches the database itself
    run_sync(turn_deliver_async(turn=turn))


def _deliver_claim(turn: Turn) -> str | None:
    """Claim the stored reply for sending; returns the text still to send, or None (nothing to send)."""
    chat = turn.chat
    now = timezone.now()
    if not turn.reply.strip():
        Turn.objects.filter(pk=turn.pk, status=Turn.Status.REPLY_READY).update(
            status=Turn.Status.SILENT, finished_at=now
        )
        return None
    # The conditional update is the claim: a second deliverer of the same turn changes nothing and leaves.
    claim = Turn.objects.filter(pk=turn.pk, status=Turn.Status.REPLY_READY)
    if chat.business_connection_id and turn.trigger in (Turn.Trigger.USER, Turn.Trigger.TIMER):
        claim = claim.filter(chat__paused_at__isnull=True)  # the business owner wrote while the reply was written
    if not claim.update(status=Turn.Status.SENDING):
        # Not sent, and not replayed to the model as said: the customer's words stay, then the owner's.
        unsent = f"not sent, the business owner took the chat over meanwhile: {turn.reply}"
        if chat.business_connection_id and Turn.objects.filter(pk=turn.pk, status=Turn.Status.REPLY_READY).update(
            status=Turn.Status.SILENT, finished_at=now, reply="", blocks=[], error=unsent[:2000]
        ):
            logger.info("reply not sent: the chat was taken over meanwhile", extra=_log_extra(chat, turn_id=turn.pk))
        return None
    if chat.channel == Chat.Channel.TERMINAL:  # `manage.py chat` reads replies from the database
        Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.SENT, finished_at=now)
        return None
    # Parts an earlier, deferred attempt delivered are not sent again.
    already_sent = list(turn.sent_message_ids or [])
    return "\n\n".join(split_message(turn.reply)[len(already_sent) :]) if already_sent else turn.reply


@retried_after_lost_connection
def _deliver_record(turn: Turn, status: str, error: str, sent_ids: list[int]) -> None:
    already_sent = list(turn.sent_message_ids or [])
    Turn.objects.filter(pk=turn.pk).update(
        status=status, error=(turn.error + "\n" + error).strip()[:2000], sent_message_ids=already_sent + sent_ids,
        finished_at=None if status == Turn.Status.REPLY_READY else timezone.now(),
    )  # fmt: skip
    stage = "reply_sent" if status == Turn.Status.SENT else "reply_failed"
    metrics.messages.labels(project=turn.project.slug, stage=stage).inc()


async def turn_deliver_async(*, turn: Turn) -> None:
    """Send a stored reply exactly once (at most once when the outcome is unknown)."""
    chat = turn.chat
    text = await in_db(_deliver_claim, turn)
    if text is None:
        await reply_preview_remove(turn=turn)  # silent, or delivered by another: no preview may stay
        return
    status, error, sent_ids = Turn.Status.SENT, "", []
    try:
        sent = await send_text_async(project=turn.project, chat=chat, text=text, reply_markup=turn.reply_markup)
        sent_ids = [m.message_id for m in sent]
    except SendOutcomeUnknown as exc:
        status, error, sent_ids = Turn.Status.SEND_UNKNOWN, str(exc), [m.message_id for m in exc.sent]
    except (ChatBlocked, PermanentSendError) as exc:
        status, error, sent_ids = Turn.Status.FAILED, str(exc), [m.message_id for m in exc.sent]
        logger.warning("reply not delivered: %s", exc, extra=_log_extra(chat, turn_id=turn.pk))
    except SendError as exc:
        # Rate limited past the retry budget, or Telegram unreachable: what did not go out provably did not,
        # so the turn waits for the sweep to deliver it later, until DELIVERY_GIVE_UP_AFTER.
        status, error, sent_ids = Turn.Status.FAILED, str(exc), [m.message_id for m in exc.sent]
        if timezone.now() - turn.created_at < DELIVERY_GIVE_UP_AFTER:
            status = Turn.Status.REPLY_READY
        log = logger.warning if status == Turn.Status.REPLY_READY else logger.error
        log("reply not delivered (%s): %s", "retried later" if status == Turn.Status.REPLY_READY else "given up",
            exc, extra=_log_extra(chat, turn_id=turn.pk))  # fmt: skip
    await in_db(_deliver_record, turn, status, error, sent_ids)
    if status != Turn.Status.REPLY_READY:  # the reply is out (or never will be): the streamed preview goes
        await reply_preview_remove(turn=turn)


def _turn_begin(generation: Generation) -> Turn | None:
    with transaction.atomic():
        # The chat (with its project) is read under the row lock that opening the turn takes anyway: one
        # statement instead of a read, then the lock.
        chat = Chat.objects.select_for_update(of=("self",)).select_related("project").get(pk=generation.chat_id)
        log_context_bind(chat_id=chat.telegram_chat_id)
        if chat.blocked_at is not None or chat.paused_at is not None:
            return None
        turn = _turn_open_locked(chat, generation)
    if turn is not None:
        turn.chat, turn.project = chat, chat.project  # the loop must never lazy-load them
    return turn


async def chat_turn_handle_async(generation: Generation) -> None:
    """The generation handler of chat turns: compose and deliver the chat's next turn."""
    turn = await in_db(_turn_begin, generation)
    if turn is None:
        return
    log_context_bind(chat_id=turn.chat.telegram_chat_id)  # for this coroutine's lines (the step bound its own)
    llm_answered = True
    if turn.status == Turn.Status.COMPOSING:
        llm_answered = await turn_compose_async(turn=turn, generation_id=generation.pk)  # the reply is on `turn`
    await turn_deliver_async(turn=turn)
    if not llm_answered:
        raise TurnFailed(turn.error)


def chat_turn_handle(generation: Generation) -> None:
    """`chat_turn_handle_async` from synchronous code."""
    run_sync(chat_turn_handle_async(generation))


def chat_turn_followup(generation: Generation) -> None:
    """Messages that arrived during the turn become the chat's next turn (one combined turn)."""
    # Usually nothing arrived: one EXISTS answers that (the chat's state in it), before the chat is loaded.
    waiting = Message.objects.filter(
        chat_id=generation.chat_id, turn__isnull=True, needs_reply=True,
        chat__blocked_at__isnull=True, chat__paused_at__isnull=True,
    )  # fmt: skip
    if not waiting.exists():
        return
    chat = Chat.objects.select_related("project").get(pk=generation.chat_id)
    if chat.blocked_at is None and chat.paused_at is None and unanswered_messages(chat).exists():
        generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)


def system_reply(*, chat: Chat, text: str, reply_markup: dict[str, Any] | None = None) -> Turn:
    """A reply of the platform's own (greeting, acknowledgement): stored as a turn, then delivered."""
    turn = Turn.objects.create(
        project_id=chat.project_id, chat=chat, trigger=Turn.Trigger.SYSTEM, status=Turn.Status.REPLY_READY,
        reply=text, reply_markup=reply_markup,
    )  # fmt: skip
    turn.project = chat.project  # the delivery needs it: not read again
    turn_deliver(turn=turn)
    return turn
