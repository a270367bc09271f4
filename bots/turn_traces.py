"""Per-turn trace records: the model calls, tool calls and results of one agent turn, for the admin.

A turn no model answered (every backend failed, or the weekly cap paused the project) leaves a trace too:
its steps are the recorded attempts and the reason, so that a failure is as visible as a reply.
"""

from django.conf import settings

from bots.agent import AgentResult
from bots.llm.slots import InvalidModelId, resolve_chain
from bots.models import LLMCall, Turn, TurnTrace
from core.log_redaction import redact
from tenants.models import Project

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


def agent_outcome(*, result: AgentResult, project: Project) -> str:
    """Answered, answered by a fallback model (the chain's primary failed), or the loop overflow's safe reply."""
    if result.overflowed:
        return Turn.Outcome.SAFE_REPLY
    try:
        primary = resolve_chain(project=project, slot="toolcaller")[0].id
    except InvalidModelId:
        primary = ""
    models = {step.get("model") for step in result.steps if step.get("kind") == "model"}
    return Turn.Outcome.FALLBACK if primary and models - {primary} else Turn.Outcome.ANSWERED


def turn_trace_record_unanswered(*, turn: Turn, purpose: str, error: str) -> TurnTrace | None:
    """The trace of a turn without a model answer: each recorded attempt of its generation, then the reason."""
    if not settings.TURN_TRACES:
        return None
    attempts = (
        LLMCall.objects.filter(project_id=turn.project_id, generation_id=turn.generation_id, purpose=purpose[:32])
        .order_by("pk")
        .values("model", "attempt", "status", "latency_ms", "error")
        if turn.generation_id
        else []
    )
    steps = [
        {"kind": "model", "model": call["model"], "ms": call["latency_ms"], "attempt": call["attempt"],
         "status": call["status"], "error": call["error"], "tokens_in": 0, "tokens_out": 0, "text": "",
         "tool_calls": []}
        for call in attempts
    ]  # fmt: skip
    steps.append({"kind": "outcome", "outcome": turn.outcome, "error": error})
    trace = TurnTrace(
        turn=turn, project_id=turn.project_id, generation_id=turn.generation_id, purpose=purpose[:32],
        model=(steps[-2]["model"] if len(steps) > 1 else "")[:200], round_trips=len(steps) - 1,
        steps=_clipped(steps), duration_ms=sum(step.get("ms", 0) for step in steps),
    )  # fmt: skip
    TurnTrace.objects.bulk_create([trace], ignore_conflicts=True)
    return trace
