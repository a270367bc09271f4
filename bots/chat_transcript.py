"""Reads for the conversation view: a chat's messages and turns in order, with each turn's tools and cost."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bots.models import Chat, Message, Turn


@dataclass(frozen=True)
class ToolStep:
    name: str
    arguments: str
    result: str
    is_error: bool


@dataclass
class TranscriptItem:
    """One line of the conversation: a user's message, or a turn (the bot's, an operator's, the platform's)."""

    at: datetime
    message: Message | None = None
    turn: Turn | None = None
    tools: list[ToolStep] = field(default_factory=list)

    @property
    def speaker(self) -> str:
        if self.message is not None:
            return "user"
        assert self.turn is not None
        speakers = {Turn.Trigger.OPERATOR: "operator", Turn.Trigger.SYSTEM: "system", Turn.Trigger.OWNER: "owner"}
        return speakers.get(self.turn.trigger, "bot")

    @property
    def problem(self) -> str:
        """ "failed", "fallback" or "paused" for a bot turn whose user did not get the model's own answer."""
        turn = self.turn
        if turn is None or turn.trigger not in (Turn.Trigger.USER, Turn.Trigger.TIMER):
            return "failed" if turn is not None and turn.status == Turn.Status.FAILED else ""
        if turn.outcome == Turn.Outcome.LLM_FAILED or turn.status == Turn.Status.FAILED:
            return "failed"
        if turn.outcome == Turn.Outcome.PAUSED:
            return "paused"
        if turn.outcome in (Turn.Outcome.FALLBACK, Turn.Outcome.SAFE_REPLY):
            return "fallback"
        return ""

    @property
    def waiting(self) -> bool:
        return self.message is not None and self.message.turn_id is None and self.message.needs_reply


@dataclass(frozen=True)
class Transcript:
    chat: Chat
    items: list[TranscriptItem]
    turns: int
    cost_usd: Decimal


def _tool_steps(blocks: list[dict[str, Any]]) -> list[ToolStep]:
    """Pair each tool call of a turn with its result (stored as the model's exchange blocks)."""
    calls: dict[str, dict[str, Any]] = {}
    steps: list[ToolStep] = []
    for message in blocks:
        for block in message.get("blocks", []):
            if block.get("type") == "tool_use":
                calls[block.get("id", "")] = block
            elif block.get("type") == "tool_result":
                call = calls.pop(block.get("tool_use_id", ""), {})
                steps.append(ToolStep(
                    name=call.get("name", "?"), arguments=json.dumps(call.get("input", {}), ensure_ascii=False),
                    result=str(block.get("content", "")), is_error=bool(block.get("is_error")),
                ))  # fmt: skip
    steps.extend(
        ToolStep(name=c.get("name", "?"), arguments=json.dumps(c.get("input", {}), ensure_ascii=False), result="",
                 is_error=False)
        for c in calls.values()
    )  # fmt: skip
    return steps


def chat_transcript(*, chat: Chat, limit: int = 300) -> Transcript:
    """The latest `limit` messages and turns of the chat, oldest first."""
    turns = list(chat.turns.select_related("trace").order_by("-created_at", "-pk")[:limit])
    messages = list(chat.messages.order_by("-created_at", "-pk")[:limit])
    items = [TranscriptItem(at=turn.created_at, turn=turn, tools=_tool_steps(turn.blocks)) for turn in turns]
    items += [TranscriptItem(at=message.created_at, message=message) for message in messages]
    # A turn is created after the messages it answers, so time order reads as the conversation went.
    items.sort(key=lambda item: (item.at, item.turn is not None))
    return Transcript(
        chat=chat, items=items[-limit:], turns=len(turns), cost_usd=sum((t.cost_usd for t in turns), Decimal(0))
    )
