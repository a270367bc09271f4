"""OpenAI chat-completions backend (OpenAI, OpenRouter, DeepSeek, GLM, Ollama, vLLM): one attempt, no retries.

The system prompt is one system message, stable prefix first, so that prefix-based automatic prompt
caching (OpenAI and most compatible servers) hits on every turn. Neutral blocks map to assistant
`tool_calls` and `role: tool` messages; the reply maps back to neutral blocks.
"""

import asyncio
import json
import uuid
from functools import lru_cache
from typing import Any

import httpx
import openai
from django.conf import settings
from openai.types.chat import ChatCompletion

from bots.llm.errors import MalformedResponse
from bots.llm.keys import next_api_key
from bots.llm.local_server import openai_base_url
from bots.llm.slots import ModelRef
from bots.llm.tool_arguments import parse_tool_arguments
from bots.llm.types import (
    Block,
    LLMMessage,
    TextBlock,
    ToolCallRequest,
    ToolCallResponse,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)


def openai_client(*, api_key: str) -> openai.OpenAI:
    return _client(openai_base_url(), api_key, float(settings.LLM_REQUEST_TIMEOUT_SECONDS))


@lru_cache(maxsize=64)
def _client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    # Built lazily, one per (endpoint, key) per process; max_retries=0 because our chain owns retries.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


def async_openai_client(*, api_key: str) -> openai.AsyncOpenAI:
    """The async client for turns; bound to the process's event loop (its connection pool lives there)."""
    loop = asyncio.get_running_loop()
    return _async_client(id(loop), settings.OPENAI_BASE_URL, api_key, float(settings.LLM_REQUEST_TIMEOUT_SECONDS))


@lru_cache(maxsize=64)
def _async_client(loop_id: int, base_url: str, api_key: str, timeout: float) -> openai.AsyncOpenAI:
    # A wide connection pool: hundreds of turns of one process wait on the model at the same time.
    http = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500))
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=http)


def call_tools(*, ref: ModelRef, request: ToolCallRequest) -> ToolCallResponse:
    client = openai_client(api_key=next_api_key(protocol="openai"))
    completion = client.chat.completions.create(**_params(ref, request))
    return _response(ref, completion)


async def call_tools_async(*, ref: ModelRef, request: ToolCallRequest) -> ToolCallResponse:
    client = async_openai_client(api_key=next_api_key(protocol="openai"))
    # The SDK's own `chat.completions.create` walks the whole request through its TypedDict transform on
    # every call (a tenth of a turn's CPU in the worker, with history and tool schemas); our parameters
    # are plain JSON already, so they go to the same endpoint untransformed (same errors, same parsing).
    completion = await client.post(
        "/chat/completions", body=_params(ref, request), cast_to=ChatCompletion,
        options={"security": {"bearer_auth": True}},
    )  # fmt: skip
    return _response(ref, completion)


def _params(ref: ModelRef, request: ToolCallRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": ref.model,
        "messages": build_messages(request),
        # `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server accepts it.
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.tools:
        params["tools"] = [tool_spec(tool) for tool in request.tools]  # tool_choice left to "auto"
    return params


def _response(ref: ModelRef, completion: Any) -> ToolCallResponse:
    check_completion(completion)
    choice = completion.choices[0]
    return ToolCallResponse(
        blocks=reply_blocks(choice.message),
        usage=completion_usage(completion),
        provider=ref.provider,
        model=ref.id,
        stop_reason=choice.finish_reason or "",
    )


def system_text(request: ToolCallRequest) -> str:
    return "\n\n".join(part for part in (request.system_prefix, request.system_suffix) if part)


def tool_spec(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def build_messages(request: ToolCallRequest) -> list[dict[str, Any]]:
    system = system_text(request)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in request.messages:
        messages.extend(_wire_messages(message))
    return messages


def _wire_messages(message: LLMMessage) -> list[dict[str, Any]]:
    texts = [block.text for block in message.blocks if isinstance(block, TextBlock) and block.text]
    if message.role == "assistant":
        calls = [
            {
                "id": block.id,
                "type": "function",
                "function": {"name": block.name, "arguments": json.dumps(block.input, ensure_ascii=False)},
            }
            for block in message.blocks
            if isinstance(block, ToolUseBlock)
        ]
        wire: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
        if calls:
            wire["tool_calls"] = calls
        elif wire["content"] is None:
            wire["content"] = ""
        return [wire]
    # Tool results must directly follow the assistant message that asked for them, so they go first.
    wire_messages: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": block.tool_use_id, "content": _tool_result_text(block)}
        for block in message.blocks
        if isinstance(block, ToolResultBlock)
    ]
    if texts or not wire_messages:
        wire_messages.append({"role": "user", "content": "\n\n".join(texts)})
    return wire_messages


def _tool_result_text(block: ToolResultBlock) -> str:
    # Chat completions has no is_error flag on tool messages: say it in the content.
    return f"Error: {block.content}" if block.is_error else block.content


def check_completion(completion: object) -> None:
    """Raise MalformedResponse (transient) for a 2xx body the layer cannot use."""
    if not isinstance(completion, ChatCompletion):
        raise MalformedResponse(f"expected a chat completion, got {type(completion).__name__}: {completion!s:.200}")
    if not completion.choices:
        raise MalformedResponse("chat completion without choices", usage=completion_usage(completion))
    if completion.choices[0].message is None:
        raise MalformedResponse("chat completion choice without a message", usage=completion_usage(completion))


def completion_usage(completion: ChatCompletion) -> Usage:
    usage = completion.usage
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=(details.cached_tokens or 0) if details else 0,
    )


def reply_blocks(message: Any) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if message.content:
        blocks.append(TextBlock(message.content))
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is None:  # custom (non-function) tool calls are not part of our protocol
            continue
        blocks.append(
            ToolUseBlock(
                id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                name=function.name or "",
                input=parse_tool_arguments(function.arguments),
            )
        )
    return tuple(blocks)
