"""Provider-neutral conversation types. Backends translate them to and from each wire protocol.

Blocks follow Anthropic's shape (text, tool_use, tool_result) because it is the richer of the two;
they are stored as JSON on each turn (`to_json` / `block_from_json`) and replayed on later turns.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TextBlock:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ToolUseBlock:
    id: str
    name: str
    input: dict[str, Any]
    type: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True)
class ToolResultBlock:
    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


Block = TextBlock | ToolUseBlock | ToolResultBlock


def block_to_json(block: Block) -> dict[str, Any]:
    return dict(block.__dict__)


def block_from_json(data: dict[str, Any]) -> Block:
    kinds = {"text": TextBlock, "tool_use": ToolUseBlock, "tool_result": ToolResultBlock}
    return kinds[data["type"]](**{k: v for k, v in data.items() if k != "type"})


@dataclass(frozen=True)
class LLMMessage:
    role: Literal["user", "assistant"]
    blocks: tuple[Block, ...]

    @classmethod
    def user_text(cls, text: str) -> "LLMMessage":
        return cls("user", (TextBlock(text),))

    @classmethod
    def assistant_text(cls, text: str) -> "LLMMessage":
        return cls("assistant", (TextBlock(text),))


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object


@dataclass(frozen=True)
class ToolCallRequest:
    """One model round-trip. The prefix is stable (cacheable); the suffix changes every turn."""

    system_prefix: str
    system_suffix: str
    messages: tuple[LLMMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    temperature: float = 0.3


@dataclass(frozen=True)
class Usage:
    """Token counts; `input_tokens` counts the whole prompt, cached tokens included. A transcription is
    billed by the seconds of audio it heard (`audio_seconds`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class ToolCallResponse:
    blocks: tuple[Block, ...]
    usage: Usage
    provider: str
    model: str  # provider/model
    cost_usd: float = 0.0
    stop_reason: str = ""

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.blocks if isinstance(block, TextBlock)).strip()

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [block for block in self.blocks if isinstance(block, ToolUseBlock)]


# Told the text of the answer being streamed so far (the whole text each time, never a delta). Called on the
# event loop between chunks, so it must be cheap and never block: it only hands the text on.
TextListener = Callable[[str], None]


@dataclass(frozen=True)
class CallContext:
    """Who an LLM call is for, so that it can be recorded and billed (project may be None for tools)."""

    purpose: str
    project_id: int | None = None
    generation_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LLMError(RuntimeError):
    """Base of the LLM layer's errors."""


class AllBackendsFailed(LLMError):
    """Every backend of the chain failed; the message lists each backend's last error."""
