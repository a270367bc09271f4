"""Anthropic Messages backend: one attempt, no retries.

The system prompt is two text blocks: the stable prefix marked `cache_control: ephemeral` (engine
preamble + project prompt; the tool schemas, rendered before the system, are inside the same cached
prefix), then the volatile suffix, uncached. tool_use / tool_result blocks are native.

`stream_tools_async` streams the same request (the SDK's message stream assembles the events) and tells a
listener the text so far, until a tool_use block starts.

No `temperature`: since API version 2026-10-21 (the default of the 2.x SDK) the Messages API answers
400 to any sampling parameter (temperature, top_p, top_k) and the SDK no longer accepts them, so
`ToolCallRequest.temperature` only applies to OpenAI-compatible backends.
"""

import asyncio
from functools import lru_cache
from typing import Any

import anthropic
import httpx
from anthropic.types import Message
from django.conf import settings

from bots.llm.errors import MalformedResponse
from bots.llm.keys import next_api_key
from bots.llm.slots import ModelRef
from bots.llm.tool_arguments import parse_tool_arguments
from bots.llm.types import (
    Block,
    LLMMessage,
    TextBlock,
    TextListener,
    ToolCallRequest,
    ToolCallResponse,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)

CACHED = {"type": "ephemeral"}
EMPTY_TEXT = "(empty)"  # the API rejects empty text blocks and empty contents


def anthropic_client(*, api_key: str) -> anthropic.Anthropic:
    return _client(settings.ANTHROPIC_BASE_URL, api_key, float(settings.LLM_REQUEST_TIMEOUT_SECONDS))


@lru_cache(maxsize=64)
def _client(base_url: str, api_key: str, timeout: float) -> anthropic.Anthropic:
    # Built lazily, one per (endpoint, key) per process; max_retries=0 because our chain owns retries.
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


def async_anthropic_client(*, api_key: str) -> anthropic.AsyncAnthropic:
    """The async client for turns; bound to the process's event loop (its connection pool lives there)."""
    loop = asyncio.get_running_loop()
    return _async_client(id(loop), settings.ANTHROPIC_BASE_URL, api_key, float(settings.LLM_REQUEST_TIMEOUT_SECONDS))


@lru_cache(maxsize=64)
def _async_client(loop_id: int, base_url: str, api_key: str, timeout: float) -> anthropic.AsyncAnthropic:
    # A wide connection pool: hundreds of turns of one process wait on the model at the same time.
    http = anthropic.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500))
    return anthropic.AsyncAnthropic(
        base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=http
    )


def call_tools(*, ref: ModelRef, request: ToolCallRequest) -> ToolCallResponse:
    client = anthropic_client(api_key=next_api_key(protocol="anthropic"))
    return _response(ref, client.messages.create(**_params(ref, request)))


async def call_tools_async(*, ref: ModelRef, request: ToolCallRequest) -> ToolCallResponse:
    client = async_anthropic_client(api_key=next_api_key(protocol="anthropic"))
    return _response(ref, await client.messages.create(**_params(ref, request)))


async def stream_tools_async(*, ref: ModelRef, request: ToolCallRequest, on_text: TextListener) -> ToolCallResponse:
    """`call_tools_async`, streamed: `on_text` hears the answer's text as it grows (not a tool round's)."""
    client = async_anthropic_client(api_key=next_api_key(protocol="anthropic"))
    calls_tools = False
    try:
        async with client.messages.stream(**_params(ref, request)) as stream:
            async for event in stream:
                if event.type == "content_block_start" and event.content_block.type == "tool_use":
                    calls_tools = True
                elif event.type == "text" and not calls_tools:
                    on_text(event.snapshot)
            message = await stream.get_final_message()
    except httpx.TransportError as exc:  # the connection broke mid-answer: nothing usable, try again
        raise MalformedResponse(f"the stream broke: {exc!r}") from exc
    except AssertionError as exc:  # the SDK's accumulator met an event out of order (no message_start)
        raise MalformedResponse(f"a stream without an answer: {exc}") from exc
    return _response(ref, message)


def _params(ref: ModelRef, request: ToolCallRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": ref.model,
        "max_tokens": request.max_tokens,
        "messages": [wire_message(message) for message in request.messages],
    }
    system = system_blocks(request)
    if system:
        params["system"] = system
    if request.tools:
        params["tools"] = [tool_spec(tool) for tool in request.tools]
    return params


def _response(ref: ModelRef, message: Any) -> ToolCallResponse:
    check_message(message)
    return ToolCallResponse(
        blocks=reply_blocks(message),
        usage=message_usage(message),
        provider=ref.provider,
        model=ref.id,
        stop_reason=message.stop_reason or "",
    )


def system_blocks(request: ToolCallRequest) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if request.system_prefix:
        blocks.append({"type": "text", "text": request.system_prefix, "cache_control": CACHED})
    if request.system_suffix:
        blocks.append({"type": "text", "text": request.system_suffix})
    return blocks


def tool_spec(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}


def wire_message(message: LLMMessage) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            if block.text:
                content.append({"type": "text", "text": block.text})
        elif isinstance(block, ToolUseBlock):
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        elif isinstance(block, ToolResultBlock):
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id}
            result["content"] = block.content or EMPTY_TEXT
            if block.is_error:
                result["is_error"] = True
            content.append(result)
    return {"role": message.role, "content": content or [{"type": "text", "text": EMPTY_TEXT}]}


def check_message(message: object) -> None:
    """Raise MalformedResponse (transient) for a 2xx body the layer cannot use."""
    if not isinstance(message, Message):
        raise MalformedResponse(f"expected a message, got {type(message).__name__}: {message!s:.200}")
    if not isinstance(message.content, list):
        raise MalformedResponse("message without content", usage=message_usage(message))


def message_usage(message: Message) -> Usage:
    """Anthropic's input_tokens excludes cache reads and writes; ours counts the whole prompt."""
    usage = message.usage
    if usage is None:
        return Usage()
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
    )


def reply_blocks(message: Message) -> tuple[Block, ...]:
    blocks: list[Block] = []
    for block in message.content:
        if block.type == "text" and block.text:
            blocks.append(TextBlock(block.text))
        elif block.type == "tool_use":
            blocks.append(ToolUseBlock(id=block.id, name=block.name, input=parse_tool_arguments(block.input)))
        # thinking and server-tool blocks are not part of our protocol: dropped
    return tuple(blocks)
