"""OpenAI chat-completions backend (OpenAI, OpenRouter, DeepSeek, GLM, Ollama, vLLM): one attempt, no retries.

`stream_tools_async` asks for the same answer as Server-Sent Events (`stream: true`, usage in a last chunk
through `stream_options.include_usage`) and assembles text and tool-call deltas into the same response,
telling a listener the text so far; a round that turns out to call tools stops telling it.

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
    TextListener,
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


async def stream_tools_async(*, ref: ModelRef, request: ToolCallRequest, on_text: TextListener) -> ToolCallResponse:
    """`call_tools_async`, streamed: `on_text` hears the answer's text as it grows (not a tool round's)."""
    client = async_openai_client(api_key=next_api_key(protocol="openai"))
    body = _params(ref, request) | {"stream": True, "stream_options": {"include_usage": True}}
    # Chunks as the plain JSON objects they are (`cast_to=object`): the SDK's model construction of every
    # chunk (a pydantic walk per token) was the largest part of a streamed turn's CPU. Same SSE decoding
    # and the same errors (an `error` event still raises the SDK's APIError).
    stream = await client.post(
        "/chat/completions", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[object],
        options={"security": {"bearer_auth": True}},
    )  # fmt: skip
    assembly = _StreamAssembly()
    try:
        async for chunk in stream:
            if assembly.add(chunk) and not assembly.calls:
                on_text(assembly.text)
    except httpx.TransportError as exc:  # the connection broke mid-answer: nothing usable, try again
        raise MalformedResponse(f"the stream broke after {assembly.chunks} chunk(s): {exc!r}") from exc
    finally:
        await stream.close()
    return assembly.response(ref)


def _object(value: object) -> dict[str, Any]:
    """A JSON object of a chunk (missing or null: empty); anything else is a malformed stream."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedResponse(f"a stream chunk with {type(value).__name__} where an object belongs: {value!s:.200}")
    return value


class _StreamAssembly:
    """Chat-completion chunks (plain JSON) put back together: text, tool calls by index, finish reason, usage."""

    def __init__(self) -> None:
        self.chunks = 0
        self.parts: list[str] = []
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason = ""
        self.usage: dict[str, Any] | None = None

    def add(self, data: object) -> bool:
        """Take one chunk; True when it added text."""
        self.chunks += 1
        chunk = _object(data)
        if chunk.get("usage") is not None:
            self.usage = _object(chunk["usage"])
        choices = chunk.get("choices") or ()
        if not choices:
            return False
        choice = _object(choices[0])
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = _object(choice.get("delta"))
        for call in delta.get("tool_calls") or ():
            call = _object(call)
            # The first fragment of a call carries its id and name; later ones only more of the arguments.
            slot = self.calls.setdefault(call.get("index") or 0, {"id": None, "name": "", "arguments": []})
            slot["id"] = slot["id"] or call.get("id")
            if (function := call.get("function")) is not None:
                function = _object(function)
                slot["name"] += function.get("name") or ""
                slot["arguments"].append(function.get("arguments") or "")
        if content := delta.get("content"):
            self.parts.append(content)
            self.text = "".join(self.parts)
            return True
        return False

    def response(self, ref: ModelRef) -> ToolCallResponse:
        usage = self._usage()
        if not self.chunks or not (self.text or self.calls or self.finish_reason):
            raise MalformedResponse(f"a stream without an answer ({self.chunks} chunk(s))", usage=usage)
        blocks: list[Block] = [TextBlock(self.text)] if self.text else []
        for index in sorted(self.calls):
            call = self.calls[index]
            blocks.append(
                ToolUseBlock(
                    id=call["id"] or f"call_{uuid.uuid4().hex[:24]}",
                    name=call["name"],
                    input=parse_tool_arguments("".join(call["arguments"])),
                )
            )
        return ToolCallResponse(
            blocks=tuple(blocks), usage=usage, provider=ref.provider, model=ref.id, stop_reason=self.finish_reason
        )

    def _usage(self) -> Usage:
        if self.usage is None:
            return Usage()
        details = self.usage.get("prompt_tokens_details")
        return Usage(
            input_tokens=self.usage.get("prompt_tokens") or 0,
            output_tokens=self.usage.get("completion_tokens") or 0,
            cached_tokens=(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        )


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


async def transcribe_async(
    *, ref: ModelRef, audio: bytes, filename: str, mime_type: str, timeout: float
) -> tuple[str, float | None]:
    """One `/audio/transcriptions` request: the text heard and, when the server says, the audio's seconds.

    Whisper models answer `verbose_json` (with the duration); the newer transcription models only `json`.
    """
    client = async_openai_client(api_key=next_api_key(protocol="openai"))
    verbose = "whisper" in ref.model.lower()
    response: Any = await client.audio.transcriptions.create(
        model=ref.model, file=(filename, audio, mime_type or "application/octet-stream"),
        response_format="verbose_json" if verbose else "json", timeout=timeout,
    )  # fmt: skip
    text = getattr(response, "text", None)
    if not isinstance(text, str):
        raise MalformedResponse(f"{ref.id} answered a transcription without text")
    duration = getattr(response, "duration", None)
    return text.strip(), float(duration) if isinstance(duration, int | float) and duration > 0 else None
