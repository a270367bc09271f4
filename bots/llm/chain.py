"""Retry, fallback and recording over a model chain, and the tool-calling entry point `call_tools`.

Per backend up to 3 tries. A transient failure waits `2**attempt` seconds + up to 10% jitter (capped at
60 s), or exactly the server's Retry-After when it sent one; a Retry-After beyond the cap is honoured by
leaving that backend alone for this call (falling through) rather than blocking a worker for minutes.
A permanent failure falls through to the next backend at once. Every attempt is recorded.

The loop is a coroutine (`run_chain_async`), so a turn waiting out a backoff or a model answer holds no
thread; `run_chain` runs it from synchronous code (structured outputs, embeddings), the blocking attempt
and the recording on the caller's thread.

Tests make the waits instant by patching `bots.llm.chain.sleep` (the module-level function every
wait goes through; an async default, a plain function patched in is simply called) and read the delays
it was called with.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from types import ModuleType
from typing import Generic, TypeVar

from bots.event_loop import in_db, pause, run_sync
from bots.llm.errors import Failure, UnparseableOutput, classify_failure, spent_usage
from bots.llm.pricing import call_cost_usd
from bots.llm.recording import Method, llm_call_record
from bots.llm.slots import ModelRef, Protocol
from bots.llm.types import AllBackendsFailed, CallContext, TextListener, ToolCallRequest, ToolCallResponse, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS_PER_BACKEND = 3
MAX_BACKOFF_SECONDS = 60.0
JITTER_FRACTION = 0.1

sleep: Callable[[float], object] = asyncio.sleep


@dataclass(frozen=True)
class AttemptResult(Generic[T]):
    value: T
    usage: Usage


@dataclass(frozen=True)
class ChainResult(Generic[T]):
    value: T
    usage: Usage  # of the successful attempt
    ref: ModelRef  # the backend that answered
    cost_usd: Decimal  # every attempt of this call that consumed tokens, the failed ones included


def backoff_seconds(*, attempt: int, retry_after: float | None) -> float | None:
    """The wait after failed attempt number `attempt` (1-based); None means "give up on this backend"."""
    if retry_after is not None:
        return retry_after if retry_after <= MAX_BACKOFF_SECONDS else None
    return min(2.0**attempt * (1 + random.uniform(0, JITTER_FRACTION)), MAX_BACKOFF_SECONDS)


def run_chain(
    *,
    chain: Sequence[ModelRef],
    context: CallContext,
    method: Method,
    attempt: Callable[[ModelRef], AttemptResult[T]],
) -> ChainResult[T]:
    """`run_chain_async` for a blocking `attempt`, from synchronous code (attempts run on this thread)."""

    async def attempt_here(ref: ModelRef) -> AttemptResult[T]:
        return await in_db(attempt, ref)

    return run_sync(run_chain_async(chain=chain, context=context, method=method, attempt=attempt_here))


async def run_chain_async(
    *,
    chain: Sequence[ModelRef],
    context: CallContext,
    method: Method,
    attempt: Callable[[ModelRef], Awaitable[AttemptResult[T]]],
) -> ChainResult[T]:
    """Await `attempt` against each backend in order until one succeeds; raise one clear error otherwise.

    Raises UnparseableOutput when some backend answered but never validly (a content problem that
    waiting will not fix), else AllBackendsFailed naming each backend's last error.
    """
    if not chain:
        raise AllBackendsFailed(f"{method} call for {context.purpose}: the model chain is empty")
    spent = Decimal(0)
    last_errors: list[str] = []
    failures: list[Exception] = []
    for ref in chain:
        for number in range(1, MAX_ATTEMPTS_PER_BACKEND + 1):
            started = time.monotonic()
            try:
                result = await attempt(ref)
            except Exception as exc:
                failures.append(exc)
                failure, cost = await in_db(
                    _record_failure, exc, ref=ref, context=context, method=method, attempt=number, started=started
                )
                spent += cost
                delay = None
                if failure.transient and number < MAX_ATTEMPTS_PER_BACKEND:
                    delay = backoff_seconds(attempt=number, retry_after=failure.retry_after)
                if delay is None:
                    last_errors.append(f"{ref.id} (attempt {number}): {failure.message}")
                    break
                logger.warning("LLM %s %s: retrying in %.1fs", method, ref.id, delay)
                await pause(sleep, delay)
                continue
            cost = await in_db(
                _record_success, ref=ref, context=context, method=method, attempt=number, usage=result.usage,
                latency_ms=_elapsed_ms(started),
            )  # fmt: skip
            return ChainResult(value=result.value, usage=result.usage, ref=ref, cost_usd=spent + cost)
    summary = "; ".join(last_errors)
    unparseable = [exc for exc in failures if isinstance(exc, UnparseableOutput)]
    if unparseable:
        raise UnparseableOutput(f"{method} output for {context.purpose} never validated: {summary}") from unparseable[
            -1
        ]
    raise AllBackendsFailed(f"all LLM backends failed for {context.purpose} ({method}): {summary}") from failures[-1]


def _record_success(
    *, ref: ModelRef, context: CallContext, method: Method, attempt: int, usage: Usage, latency_ms: int
) -> Decimal:
    cost = call_cost_usd(model=ref.id, usage=usage)
    llm_call_record(
        context=context, ref=ref, method=method, attempt=attempt, usage=usage, latency_ms=latency_ms, cost_usd=cost
    )
    return cost


def _record_failure(
    exc: Exception, *, ref: ModelRef, context: CallContext, method: Method, attempt: int, started: float
) -> tuple[Failure, Decimal]:
    latency_ms = _elapsed_ms(started)
    failure = classify_failure(exc)
    usage = spent_usage(exc)  # a failed attempt may still have been billed (e.g. output that never validated)
    cost = call_cost_usd(model=ref.id, usage=usage)
    llm_call_record(
        context=context,
        ref=ref,
        method=method,
        attempt=attempt,
        usage=usage,
        latency_ms=latency_ms,
        cost_usd=cost,
        error=failure.message,
    )
    # A traceback only for what we could not classify: that is more likely our bug than the provider's.
    unexpected = failure.message.startswith("unexpected ")
    logger.warning(
        "LLM %s %s (%s, project %s) attempt %d failed (%s): %s",
        method,
        ref.id,
        context.purpose,
        context.project_id,
        attempt,
        "transient" if failure.transient else "permanent",
        failure.message,
        exc_info=exc if unexpected else None,
    )
    return failure, cost


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


ToolBackend = Callable[..., Awaitable[ToolCallResponse]]

# Models whose server refused a streamed request (an older local server: no `stream_options`, no streamed
# tool calls); this process asks them for whole answers from then on.
_unstreamable: set[str] = set()
STREAM_REFUSED_STATUSES = frozenset({400, 422})


async def _streamed_or_whole(ref: ModelRef, request: ToolCallRequest, on_text: TextListener) -> ToolCallResponse:
    """The streamed answer; when the server refuses to stream (400/422), the same request unstreamed, at once.

    Models whose server answers the unstreamed request are asked unstreamed from then on (in this process).
    """
    try:
        backend = await tool_backend(ref.protocol, streaming=True)
        return await backend(ref=ref, request=request, on_text=on_text)
    except Exception as exc:
        if getattr(exc, "status_code", None) not in STREAM_REFUSED_STATUSES:
            raise
        refusal = exc
    # A request that is bad in itself fails here too, with its own error; only a refusal to stream is remembered.
    response = await (await tool_backend(ref.protocol))(ref=ref, request=request)
    _unstreamable.add(ref.id)
    logger.warning("LLM %s refused a streamed request (%s); asking for whole answers from now on", ref.id, refusal)
    return response


_backends: dict[str, ModuleType] = {}


async def tool_backend(protocol: Protocol, *, streaming: bool = False) -> ToolBackend:
    """The protocol's backend call. The backends import the openai / anthropic SDKs (seconds of CPU): they
    load on the first call, not at start-up, and on a thread, since an import on the event loop would stall
    every turn in flight (their "typing..." requests timed out behind it)."""
    if not _backends:
        await asyncio.to_thread(_backends_load)
    backend = _backends[protocol]
    return backend.stream_tools_async if streaming else backend.call_tools_async


def _backends_load() -> None:
    # Local: the SDKs take seconds to import, so only a process that calls a model pays for them.
    from bots.llm import anthropic_backend, openai_backend

    _backends.update(openai=openai_backend, anthropic=anthropic_backend)


async def call_tools_async(
    *, request: ToolCallRequest, chain: list[ModelRef], context: CallContext, on_text: TextListener | None = None
) -> ToolCallResponse:
    """One model round-trip with tools, over the chain with retries and fallbacks; raises AllBackendsFailed.

    With `on_text` the answer is streamed and `on_text` hears its text as it grows (a retry or the next
    backend starts it again from nothing); the response is the same as without.
    """

    async def attempt(ref: ModelRef) -> AttemptResult[ToolCallResponse]:
        if on_text is None or ref.id in _unstreamable:
            response = await (await tool_backend(ref.protocol))(ref=ref, request=request)
        else:
            response = await _streamed_or_whole(ref, request, on_text)
        return AttemptResult(value=response, usage=response.usage)

    outcome = await run_chain_async(chain=chain, context=context, method="tools", attempt=attempt)
    return replace(outcome.value, cost_usd=float(outcome.cost_usd))


def call_tools(*, request: ToolCallRequest, chain: list[ModelRef], context: CallContext) -> ToolCallResponse:
    """`call_tools_async` from synchronous code."""
    return run_sync(call_tools_async(request=request, chain=chain, context=context))
