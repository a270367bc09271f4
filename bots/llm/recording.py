"""The one place where an LLM attempt is recorded (an `LLMCall` row); metrics will hook in here too."""

from decimal import Decimal
from typing import Literal

from bots.llm.slots import ModelRef
from bots.llm.types import CallContext, Usage
from bots.models import LLMCall
from core import metrics
from core.log_redaction import redact

Method = Literal["tools", "structured", "embed", "transcribe"]

MAX_ERROR_CHARS = 4000


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
    return LLMCall.objects.create(
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
