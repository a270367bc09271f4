"""Per-turn trace records: the model calls, tool calls and results of one agent turn, for the admin."""

from django.conf import settings

from bots.agent import AgentResult
from bots.models import Turn, TurnTrace
from core.log_redaction import redact

MAX_STEP_TEXT_CHARS = 4000  # a tool result (search hits) can be long; the admin shows the head


def _clipped(value: object) -> object:
    if isinstance(value, str):
        return redact(value[:MAX_STEP_TEXT_CHARS])
    if isinstance(value, dict):
        return {key: _clipped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clipped(item) for item in value]
    return value


def turn_trace_record(*, turn: Turn, result: AgentResult, purpose: str) -> TurnTrace | None:
    """Store the trace of a composed turn (once per turn; a resumed turn keeps its first trace).

    One INSERT ... ON CONFLICT DO NOTHING: a trace must not add round-trips to every turn.
    """
    if not settings.TURN_TRACES:
        return None
    trace = TurnTrace(
        turn=turn, project_id=turn.project_id, generation_id=turn.generation_id, purpose=purpose[:32],
        model=result.model[:200], round_trips=result.round_trips, tools_called=result.tools_called,
        steps=_clipped(result.steps), duration_ms=result.duration_ms, tokens_in=result.tokens_in,
        tokens_out=result.tokens_out, cost_usd=result.cost_usd, overflowed=result.overflowed,
    )  # fmt: skip
    TurnTrace.objects.bulk_create([trace], ignore_conflicts=True)
    return trace
