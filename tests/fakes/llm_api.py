"""Fake LLM provider servers for tests: real HTTP speaking the OpenAI and Anthropic wire protocols.

Point the real clients at it::

    openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key="k", max_retries=0)
    anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)

Script replies per API (FIFO) with the neutral builders below; the server renders each reply in the shape of
the protocol it answers. Priority: ``fail_all`` > queued reply > ``responder(request)`` > ``text("ok")``.

Streaming: a request with ``"stream": true`` gets Server-Sent Events in the protocol's own shape (OpenAI
``chat.completion.chunk`` ``data:`` lines ending in ``data: [DONE]``, tool calls as ``tool_calls`` deltas, a
final usage chunk when ``stream_options.include_usage`` is set; Anthropic ``message_start`` ...
``message_stop`` events with ``text_delta`` / ``input_json_delta``). The text goes out word by word after
``first_token_delay`` seconds, then one word every ``token_delay`` seconds (both per reply); the same
reply asked for without streaming comes whole when its last word would have.

Transcriptions (``POST /v1/audio/transcriptions``, multipart with ``model`` and ``file``): the upload's bytes
are recorded (``LLMRequest.upload``) and answered with the scripted text, else the text set for those exact
bytes (``transcriptions.set``); ``response_format`` json (with usage in seconds), verbose_json (with the
duration, measured from a WAV upload) or text.

Usage semantics follow OpenAI: ``prompt_tokens`` is the whole prompt, ``cached_tokens`` the part read from the
cache. For Anthropic that becomes ``input_tokens = prompt_tokens - cached_tokens - cache_creation_tokens``,
``cache_read_input_tokens = cached_tokens`` and ``cache_creation_input_tokens = cache_creation_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import re
import struct
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, make_server
from werkzeug.wrappers import Request, Response

# Hundreds of clients connect at once in the scale benchmark: a listen backlog beyond werkzeug's 128.
ThreadedWSGIServer.request_queue_size = 4096

Api = Literal["openai", "anthropic", "embeddings", "transcriptions"]
ROUTES: dict[str, Api] = {
    "/chat/completions": "openai", "/messages": "anthropic", "/embeddings": "embeddings",
    "/audio/transcriptions": "transcriptions",
}  # fmt: skip

OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# --- neutral replies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``status`` != 200 means an error, ``raw`` is sent verbatim (malformed)."""

    content: str | None = None
    calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    status: int = 200
    message: str | None = None
    retry_after: float | None = None
    raw: str | dict[str, Any] | None = None
    content_type: str = "application/json"
    vectors: tuple[tuple[float, ...], ...] | None = None
    audio_seconds: float | None = None  # transcriptions: the duration to report (default: the WAV's own)
    delay: float = 0.0  # before the answer starts (headers included)
    first_token_delay: float = 0.0  # streaming: after the headers, before the first token
    token_delay: float = 0.0  # streaming: between tokens


def text(
    content: str,
    *,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    delay: float = 0.0,
    first_token_delay: float = 0.0,
    token_delay: float = 0.0,
) -> Reply:
    return Reply(
        content=content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_creation_tokens=cache_creation_tokens,
        delay=delay,
        first_token_delay=first_token_delay,
        token_delay=token_delay,
    )


def streamed(content: str, *, first_token_after: float, total: float, **usage: int) -> Reply:
    """A text reply whose first token comes after ``first_token_after`` s and whose last one at ``total`` s."""
    gaps = max(1, len(_tokens(content)) - 1)
    return text(content, first_token_delay=first_token_after, token_delay=(total - first_token_after) / gaps, **usage)


def tool_calls(
    calls: list[tuple[str, dict[str, Any]]] | list[ToolCall],
    *,
    text: str | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    delay: float = 0.0,
    first_token_delay: float = 0.0,
    token_delay: float = 0.0,
) -> Reply:
    """Several tool calls in one reply: ``[(name, args), ...]`` or ``[ToolCall(...), ...]``."""
    return Reply(
        content=text,
        calls=tuple(c if isinstance(c, ToolCall) else ToolCall(*c) for c in calls),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_creation_tokens=cache_creation_tokens,
        delay=delay,
        first_token_delay=first_token_delay,
        token_delay=token_delay,
    )


def tool_call(
    name: str,
    arguments: dict[str, Any],
    *,
    call_id: str | None = None,
    text: str | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    delay: float = 0.0,
    first_token_delay: float = 0.0,
    token_delay: float = 0.0,
) -> Reply:
    return tool_calls(
        [ToolCall(name, arguments, call_id)],
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_creation_tokens=cache_creation_tokens,
        delay=delay,
        first_token_delay=first_token_delay,
        token_delay=token_delay,
    )


def error(status: int, *, message: str | None = None, retry_after: float | None = None, delay: float = 0.0) -> Reply:
    return Reply(status=status, message=message, retry_after=retry_after, delay=delay)


def malformed(
    body: str | dict[str, Any], status: int = 200, *, content_type: str = "application/json", delay: float = 0.0
) -> Reply:
    """Send ``body`` verbatim (a dict as JSON), e.g. ``{"choices": []}``, ``'{"trunc'`` or HTML (``text/html``)."""
    return Reply(raw=body, status=status, content_type=content_type, delay=delay)


def vectors(vecs: list[list[float]], *, delay: float = 0.0) -> Reply:
    """An embeddings reply with exactly these vectors (one per input)."""
    return Reply(vectors=tuple(tuple(v) for v in vecs), delay=delay)


def transcription(content: str, *, seconds: float | None = None, delay: float = 0.0) -> Reply:
    """A transcription reply: ``content`` heard, ``seconds`` long (default: measured from a WAV upload)."""
    return Reply(content=content, audio_seconds=seconds, delay=delay)


def wav_seconds(data: bytes) -> float | None:
    """The length of a WAV upload, read with the stdlib; None for other formats."""
    try:
        with wave.open(io.BytesIO(data)) as audio:
            return audio.getnframes() / float(audio.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic L2-normalised vector for ``text``."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


# --- recording and scripting -----------------------------------------------------------------------------


@dataclass
class LLMRequest:
    api: Api
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.time)
    upload: bytes = b""  # transcriptions: the audio file's bytes (the form fields are in ``body``)

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return self.headers.get("x-api-key")


Responder = Callable[[LLMRequest], Reply]


class Script:
    """Per-API reply script: FIFO queue, optional ``responder`` and a ``failing`` override."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._queue: deque[Reply] = deque()
        self.responder: Responder | None = None
        self.failing: Reply | None = None

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
        self.responder = None
        self.failing = None

    def next_reply(self, request: LLMRequest) -> Reply | None:
        with self._lock:
            if self.failing is not None:
                return self.failing
            if self._queue:
                return self._queue.popleft()
        return self.responder(request) if self.responder else None


class TranscriptionsScript(Script):
    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.heard: dict[bytes, str] = {}

    def set(self, audio: bytes, content: str) -> None:
        """Always transcribe exactly these bytes as ``content`` (when no scripted reply applies)."""
        self.heard[bytes(audio)] = content

    def clear(self) -> None:
        super().clear()
        self.heard.clear()


class EmbeddingsScript(Script):
    def __init__(self, lock: threading.Lock, dimensions: int) -> None:
        super().__init__(lock)
        self.default_dimensions = dimensions
        self.dimensions = dimensions
        self.fixed: dict[str, list[float]] = {}

    def set(self, text: str, vector: list[float]) -> None:
        """Always answer ``text`` with ``vector`` (when no scripted reply applies)."""
        self.fixed[text] = list(vector)

    def clear(self) -> None:
        super().clear()
        self.fixed.clear()
        self.dimensions = self.default_dimensions


# --- the server ------------------------------------------------------------------------------------------


class FakeLLM:
    def __init__(self, embedding_dimensions: int = 16) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._requests: list[LLMRequest] = []
        self.openai = Script(self._lock)
        self.anthropic = Script(self._lock)
        self.embeddings = EmbeddingsScript(self._lock, embedding_dimensions)
        self.transcriptions = TranscriptionsScript(self._lock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeLLM:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = self._thread = None

    @property
    def base_url(self) -> str:
        assert self._server, "FakeLLM not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # inspection
    @property
    def requests(self) -> list[LLMRequest]:
        with self._cond:
            return list(self._requests)

    def requests_to(self, api: Api) -> list[LLMRequest]:
        return [r for r in self.requests if r.api == api]

    def wait_for(self, api: Api, count: int = 1, timeout: float = 10.0) -> list[LLMRequest]:
        """Block until at least ``count`` requests reached ``api``; return them."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(r.api == api for r in self._requests) >= count, timeout):
                got = sum(r.api == api for r in self._requests)
                raise TimeoutError(f"expected {count} {api} request(s) within {timeout}s, got {got}")
        return self.requests_to(api)

    def reset(self) -> None:
        with self._cond:
            self._requests.clear()
        for script in self._scripts.values():
            script.clear()

    # failure modes
    def fail_all(
        self, api: Api, status: int = 503, *, message: str | None = None, retry_after: float | None = None
    ) -> None:
        self._scripts[api].failing = error(status, message=message, retry_after=retry_after)

    def recover(self, api: Api) -> None:
        self._scripts[api].failing = None

    @property
    def _scripts(self) -> dict[Api, Script]:
        return {
            "openai": self.openai, "anthropic": self.anthropic, "embeddings": self.embeddings,
            "transcriptions": self.transcriptions,
        }  # fmt: skip

    # HTTP
    @Request.application
    def _wsgi(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        api = next((a for suffix, a in ROUTES.items() if path.endswith(suffix)), None)
        if api is None or request.method != "POST":
            return _error("openai", error(404, message=f"fake LLM: no route {request.method} {path}"))
        upload = b""
        if api == "transcriptions":  # multipart/form-data: the form fields, and the audio as a file part
            body = {key: request.form[key] for key in request.form}
            if (part := request.files.get("file")) is not None:
                upload = part.read()
                body["file"] = {"filename": part.filename, "content_type": part.content_type, "size": len(upload)}
        else:
            try:
                body = json.loads(request.get_data(as_text=True) or "{}")
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {"_raw": body}
        headers = {k.lower(): v for k, v in request.headers.items()}
        recorded = LLMRequest(api, path, headers, body, upload=upload)
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()

        protocol = "anthropic" if api == "anthropic" else "openai"
        reply = self._scripts[api].next_reply(recorded) or (
            text("ok") if api not in ("embeddings", "transcriptions") else Reply()
        )
        if reply.delay:
            time.sleep(reply.delay)
        if reply.raw is not None:
            if api == "openai" and body.get("stream") is True and reply.status == 200 and _is_completion(reply.raw):
                # A scripted completion (broken arguments, no choices, ...) reaches a streaming client as chunks.
                return _sse(_completion_chunks(body, reply.raw), reply)
            raw = reply.raw if isinstance(reply.raw, str) else json.dumps(reply.raw)
            return Response(raw, reply.status, content_type=reply.content_type)
        if reply.status != 200:
            return _error(protocol, reply)
        if api == "embeddings":
            return _json(self._embeddings(body, reply))
        if api == "transcriptions":
            return self._transcription(recorded, reply)
        if body.get("stream") is True:
            events = _anthropic_events(body, reply) if api == "anthropic" else _openai_chunks(body, reply)
            return _sse(events, reply)
        if reply.first_token_delay or reply.token_delay:  # unstreamed, the answer comes when its last token does
            pieces = len(_tokens(reply.content)) + len(reply.calls)
            time.sleep(reply.first_token_delay + reply.token_delay * max(0, pieces - 1))
        return _json(_anthropic_message(body, reply) if api == "anthropic" else _openai_completion(body, reply))

    def _transcription(self, request: LLMRequest, reply: Reply) -> Response:
        """OpenAI's /audio/transcriptions answer: ``json`` (text, usage in seconds) or ``verbose_json``."""
        if not request.body.get("model") or "file" not in request.body:
            return _error("openai", error(400, message="model and file are required"))
        fmt = request.body.get("response_format", "json")
        if fmt not in ("json", "verbose_json", "text"):
            return _error("openai", error(400, message=f"response_format {fmt!r} is not supported"))
        heard = reply.content if reply.content is not None else self.transcriptions.heard.get(request.upload)
        if heard is None:
            heard = f"audio {hashlib.sha256(request.upload).hexdigest()[:8]}"
        seconds = reply.audio_seconds if reply.audio_seconds is not None else wav_seconds(request.upload) or 1.0
        if fmt == "text":
            return Response(heard, 200, content_type="text/plain")
        if fmt == "verbose_json":
            segment = {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": seconds,
                "text": heard,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            }
            return _json({"task": "transcribe", "language": "english", "duration": seconds, "text": heard,
                          "segments": [segment]})  # fmt: skip
        return _json({"text": heard, "usage": {"type": "duration", "seconds": math.ceil(seconds)}})

    def _embeddings(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else [i if isinstance(i, str) else str(i) for i in inputs]
        dims = body.get("dimensions") or self.embeddings.dimensions
        vecs = (
            [list(v) for v in reply.vectors]
            if reply.vectors is not None
            else [self.embeddings.fixed.get(t) or fake_vector(t, dims) for t in inputs]
        )
        b64 = body.get("encoding_format") == "base64"
        tokens = sum(len(t.split()) or 1 for t in inputs)
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if b64 else v,
                }
                for i, v in enumerate(vecs)
            ],
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status, headers=headers, content_type="application/json")


def _error(protocol: str, reply: Reply) -> Response:
    status = reply.status
    headers = {"retry-after": f"{reply.retry_after:g}"} if reply.retry_after is not None else None
    if protocol == "anthropic":
        kind = ANTHROPIC_ERRORS.get(status, "api_error")
        return _json({"type": "error", "error": {"type": kind, "message": reply.message or kind}}, status, headers)
    kind, code = OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    message = reply.message or f"fake error {status}"
    return _json({"error": {"message": message, "type": kind, "param": None, "code": code}}, status, headers)


def _openai_completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": c.call_id or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in reply.calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if reply.calls else "stop"}
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        },
    }


def _anthropic_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.content}] if reply.content is not None else []
    content += [
        {"type": "tool_use", "id": c.call_id or f"toolu_{uuid.uuid4().hex[:24]}", "name": c.name, "input": c.arguments}
        for c in reply.calls
    ]
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": "tool_use" if reply.calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(0, reply.prompt_tokens - reply.cached_tokens - reply.cache_creation_tokens),
            "output_tokens": reply.completion_tokens,
            "cache_creation_input_tokens": reply.cache_creation_tokens,
            "cache_read_input_tokens": reply.cached_tokens,
        },
    }


# --- streaming ------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*\S+|\s+")


def _tokens(content: str | None) -> list[str]:
    """Word-sized pieces that join back to exactly ``content``."""
    return _TOKEN.findall(content or "")


@dataclass(frozen=True)
class _Event:
    data: dict[str, Any] | str
    token: bool = False  # a piece of the model's output: paced by the reply's delays
    name: str | None = None  # the SSE ``event:`` field (Anthropic names every event)


def _sse(events: Iterator[_Event], reply: Reply) -> Response:
    def body() -> Iterator[bytes]:
        first = True
        for event in events:
            if event.token:
                time.sleep(reply.first_token_delay if first else reply.token_delay)
                first = False
            data = event.data if isinstance(event.data, str) else json.dumps(event.data)
            yield ((f"event: {event.name}\n" if event.name else "") + f"data: {data}\n\n").encode()

    return Response(body(), 200, content_type="text/event-stream", headers={"cache-control": "no-cache"})


def _openai_chunks(body: dict[str, Any], reply: Reply) -> Iterator[_Event]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model", "")}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield _Event(chunk({"role": "assistant", "content": ""}))
    for piece in _tokens(reply.content):
        yield _Event(chunk({"content": piece}), token=True)
    for index, call in enumerate(reply.calls):
        call_id = call.call_id or f"call_{uuid.uuid4().hex[:24]}"
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield _Event(chunk({"tool_calls": [head]}), token=True)
        arguments = json.dumps(call.arguments)
        for start in range(0, len(arguments), 8):  # arguments arrive in fragments, as real servers send them
            fragment = {"index": index, "function": {"arguments": arguments[start : start + 8]}}
            yield _Event(chunk({"tool_calls": [fragment]}), token=True)
    yield _Event(chunk({}, "tool_calls" if reply.calls else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        }  # fmt: skip
        yield _Event(base | {"choices": [], "usage": usage})
    yield _Event("[DONE]")


def _is_completion(raw: object) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("choices"), list)


def _completion_chunks(body: dict[str, Any], raw: dict[str, Any]) -> Iterator[_Event]:
    """A scripted chat.completion body as the chunks a server would have streamed it in, verbatim values."""
    base = {k: raw[k] for k in ("id", "created", "model") if k in raw} | {"object": "chat.completion.chunk"}
    for choice in raw["choices"]:
        message = choice.get("message") or {}
        delta = {"role": "assistant", "content": message.get("content")}
        calls = [dict(call, index=index) for index, call in enumerate(message.get("tool_calls") or ())]
        yield _Event(base | {"choices": [{"index": 0, "delta": delta | ({"tool_calls": calls} if calls else {})}]})
        yield _Event(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}]})
    if (body.get("stream_options") or {}).get("include_usage") and raw.get("usage"):
        yield _Event(base | {"choices": [], "usage": raw["usage"]})
    yield _Event("[DONE]")


def _anthropic_events(body: dict[str, Any], reply: Reply) -> Iterator[_Event]:
    message = _anthropic_message(body, reply)
    usage = message["usage"]
    start = message | {"content": [], "stop_reason": None, "usage": usage | {"output_tokens": 1}}
    yield _Event({"type": "message_start", "message": start}, name="message_start")
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            head = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _tokens(block["text"])]
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": arguments[i : i + 8]}
                      for i in range(0, len(arguments), 8)]  # fmt: skip
        yield _Event({"type": "content_block_start", "index": index, "content_block": head}, name="content_block_start")
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            yield _Event(event, token=True, name="content_block_delta")
        yield _Event({"type": "content_block_stop", "index": index}, name="content_block_stop")
    final = {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
             "usage": {"output_tokens": usage["output_tokens"]}}  # fmt: skip
    yield _Event(final, name="message_delta")
    yield _Event({"type": "message_stop"}, name="message_stop")


# --- pytest plugin ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    fake_llm_server.reset()
    return fake_llm_server


@pytest.fixture
def make_fake_llm() -> Iterator[Callable[..., FakeLLM]]:
    """Factory for extra independent servers (e.g. a second backend); all stopped at teardown."""
    started: list[FakeLLM] = []

    def make(**kwargs: Any) -> FakeLLM:
        started.append(FakeLLM(**kwargs).start())
        return started[-1]

    yield make
    for server in started:
        server.stop()
