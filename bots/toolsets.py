"""The toolset protocol the agent calls, and the engine's own small toolset (kinds bring theirs: bots/kinds.py)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bots.llm.types import ToolSpec
from bots.models import Chat, Turn
from tenants.models import Project


class ToolError(Exception):
    """A tool refused its input; the message goes back to the model as an error result."""


@dataclass
class ToolContext:
    project: Project
    chat: Chat
    turn: Turn


class Toolset(Protocol):
    def specs(self) -> list[ToolSpec]: ...

    def execute(self, name: str, arguments: dict[str, Any], context: ToolContext) -> str: ...

    def preamble(self, project: Project) -> str:
        """Engine instructions that teach the model these tools (stable: part of the cached prefix)."""
        ...

    def state_snapshot(self, context: ToolContext) -> str:
        """What the model should see of the chat's state this turn (volatile suffix)."""
        ...

    def reply_without_model(self, context: ToolContext) -> str | None:
        """A reply that needs no model this turn (e.g. the conversation is finished), or None."""
        ...

    def reply_markup(self, context: ToolContext, reply: str) -> dict[str, Any] | None:
        """A keyboard to send with the reply (Bot API JSON), or None."""
        ...


class ClockTools:
    """The engine's own small toolset (the local time of the business), for kinds without their own."""

    CURRENT_TIME = ToolSpec(
        name="current_time",
        description="The current date, weekday and time in the business's time zone.",
        parameters={"type": "object", "properties": {}, "additionalProperties": False},
    )

    def specs(self) -> list[ToolSpec]:
        return [self.CURRENT_TIME]

    def execute(self, name: str, arguments: dict[str, Any], context: ToolContext) -> str:
        if name != self.CURRENT_TIME.name:
            raise ToolError(f"unknown tool {name!r}")
        now = datetime.now(ZoneInfo(context.project.timezone))
        return now.strftime(f"%A %Y-%m-%d %H:%M ({context.project.timezone})")

    def preamble(self, project: Project) -> str:
        return ""

    def state_snapshot(self, context: ToolContext) -> str:
        return ""

    def reply_without_model(self, context: ToolContext) -> str | None:
        return None

    def reply_markup(self, context: ToolContext, reply: str) -> dict[str, Any] | None:
        return None
