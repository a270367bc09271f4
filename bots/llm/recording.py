"""The one place where an LLM attempt is recorded (an `LLMCall` row); metrics will hook in here too."""

from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from bots.llm.slots import ModelRef
from bots.llm.types import CallContext, Usage
from bots.models import LLMCall
from core import metrics
from core.log_redaction import redact

Method = Literal["tools", "structured", "embed", "transcribe"]

MAX_ERROR_CHARS = 4000


@dataclass
class UsageTally:
    """What the attempts recorded for one generation while it ran here added up to."""

    generation_id: int
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cost_usd: Decimal = Decimal(0)


# The tally of the generation running in this context (set by the generation queue for one run).
usage_tally: ContextVar[UsageTally | None] = ContextVar("usage_tally", default=None)


def llm_call_record(
    *,
    context: CallContext,
    ref: ModelRef,
    method: Method,
    attempt: int,
    usage: Usage,
    latency_ms: int,
    cost_usd: Decimal,
    error: str = "",
) -> LLMCall:
    """One row per attempt, ok or error; the error text is redacted (keys never reach the admin)."""
    metrics.llm_requests.labels(provider=ref.provider, method=method, status="error" if error else "ok").inc()
    metrics.llm_request_seconds.labels(provider=ref.provider, method=method).observe(max(0, latency_ms) / 1000)
    call = LLMCall.objects.create(
        project_id=context.project_id,
        generation_id=context.generation_id,
        purpose=context.purpose[:32],
        provider=ref.provider[:32],
        model=ref.id[:200],
        method=method,
        status=LLMCall.Status.ERROR if error else LLMCall.Status.OK,
        attempt=attempt,
        tokens_in=usage.input_tokens,
        tokens_out=usage.output_tokens,
        tokens_cached=usage.cached_tokens,
        latency_ms=max(0, latency_ms),
        cost_usd=cost_usd,
        error=redact(error)[:MAX_ERROR_CHARS],
    )
    tally = usage_tally.get()
    if tally is not None and context.generation_id == tally.generation_id:
        tally.tokens_in += call.tokens_in
        tally.tokens_out += call.tokens_out
        tally.tokens_cached += call.tokens_cached
        tally.cost_usd += call.cost_usd
    return call
