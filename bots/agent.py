"""The tool-calling agent: stable cached prefix, volatile state suffix, at most 8 model round-trips.

The loop is a coroutine: it awaits the model, and runs the tools (database, search) off the loop with
`in_db`, so a turn waiting for the model holds no thread. `agent_run` runs it from synchronous code.
"""

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bots import turn_metrics
from bots.event_loop import in_db, run_sync
from bots.llm.chain import call_tools_async
from bots.llm.pricing import prices_memoized
from bots.llm.slots import ModelRef, resolve_chain
from bots.llm.tool_arguments import unparsed_arguments
from bots.llm.types import (
    CallContext,
    LLMMessage,
    TextBlock,
    TextListener,
    ToolCallRequest,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from bots.texts import ENGINE_PREAMBLE, SAFE_REPLY, in_language
from bots.toolsets import ToolContext, ToolError, Toolset
from core import metrics

logger = logging.getLogger(__name__)

MAX_ROUND_TRIPS = 8


@dataclass
class AgentResult:
    reply: str
    exchange: list[LLMMessage]  # the model's messages and the tool results of this turn, in order
    round_trips: int
    overflowed: bool = False
    cost_usd: Decimal = Decimal(0)
    tokens_in: int = 0
    tokens_out: int = 0
    tools_called: list[str] = field(default_factory=list)
    model: str = ""
    # The turn's trace: each model call and each tool call with its arguments, result and duration.
    steps: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: int = 0
    # Tools that crashed (not refusals): the turn is marked with them, operators see them.
    tool_failures: list[str] = field(default_factory=list)


def system_prefix(*, context: ToolContext, toolset: Toolset) -> str:
    project = context.project
    parts = [in_language(project, ENGINE_PREAMBLE), toolset.preamble(project), project.prompt.strip()]
    return "\n\n".join(part for part in parts if part)


def _execute(toolset: Toolset, use: ToolUseBlock, context: ToolContext, result: AgentResult) -> ToolResultBlock:
    """Run one tool call; a refusal or a crash becomes an error result the model can react to."""
    if unparsed_arguments(use) is not None:
        return ToolResultBlock(tool_use_id=use.id, content="error: the arguments were not valid JSON", is_error=True)
    try:
        return ToolResultBlock(tool_use_id=use.id, content=toolset.execute(use.name, use.input, context))
    except ToolError as exc:
        return ToolResultBlock(tool_use_id=use.id, content=f"error: {exc}", is_error=True)
    except Exception as exc:
        logger.exception(
            "tool %s failed",
            use.name,
            extra={"project_id": context.project.pk, "chat_id": context.chat.telegram_chat_id, "tool": use.name},
        )
        turn_metrics.tool_failures.labels(project=metrics.project_label(context.project.pk), tool=use.name).inc()
        result.tool_failures.append(f"{use.name}: {type(exc).__name__}: {exc}"[:300])
        return ToolResultBlock(tool_use_id=use.id, content="error: the tool failed; try another way", is_error=True)


def _execute_traced(toolset: Toolset, use: ToolUseBlock, context: ToolContext, result: AgentResult) -> ToolResultBlock:
    started = time.perf_counter()
    outcome = _execute(toolset, use, context, result)
    result.steps.append({
        "kind": "tool", "name": use.name, "input": use.input, "result": outcome.content,
        "is_error": outcome.is_error, "ms": _elapsed_ms(started),
    })  # fmt: skip
    return outcome


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def agent_run(
    *, context: ToolContext, toolset: Toolset, thread: list[LLMMessage], generation_id: int | None, purpose: str
) -> AgentResult:
    """`agent_run_async` from synchronous code."""
    return run_sync(
        agent_run_async(context=context, toolset=toolset, thread=thread, generation_id=generation_id, purpose=purpose)
    )


def _prepare(context: ToolContext, toolset: Toolset) -> tuple[list[ModelRef], str, tuple[ToolSpec, ...], str]:
    chain = resolve_chain(project=context.project, slot="toolcaller")
    prefix = system_prefix(context=context, toolset=toolset)
    return chain, prefix, tuple(toolset.specs()), toolset.state_snapshot(context)


def _run_tools(
    toolset: Toolset, uses: list[ToolUseBlock], context: ToolContext, result: AgentResult
) -> tuple[LLMMessage, str]:
    """The tool calls of one model answer, and the state snapshot after them (one trip off the loop)."""
    outcomes = tuple(_execute_traced(toolset, use, context, result) for use in uses)
    return LLMMessage("user", outcomes), toolset.state_snapshot(context)


async def agent_run_async(
    *,
    context: ToolContext,
    toolset: Toolset,
    thread: list[LLMMessage],
    generation_id: int | None,
    purpose: str,
    on_text: TextListener | None = None,
) -> AgentResult:
    """Run the tool loop for one turn; `thread` ends with this turn's user message.

    With `on_text`, every round is streamed and `on_text` hears the final answer's text as it is written.
    """
    with prices_memoized():  # the turn's model calls price their usage from one read of the price table
        return await _agent_loop(
            context=context, toolset=toolset, thread=thread, generation_id=generation_id, purpose=purpose,
            on_text=on_text,
        )  # fmt: skip


async def _agent_loop(
    *,
    context: ToolContext,
    toolset: Toolset,
    thread: list[LLMMessage],
    generation_id: int | None,
    purpose: str,
    on_text: TextListener | None,
) -> AgentResult:
    project = context.project
    chain, prefix, tools, snapshot = await in_db(_prepare, context, toolset)
    messages = list(thread)
    result = AgentResult(reply="", exchange=[], round_trips=0)
    call_context = CallContext(purpose=purpose, project_id=project.pk, generation_id=generation_id)
    turn_started = time.perf_counter()

    while result.round_trips < MAX_ROUND_TRIPS:
        request = ToolCallRequest(
            system_prefix=prefix,
            system_suffix=snapshot,  # tools may have changed the state: rebuilt after each round of tools
            messages=tuple(messages),
            tools=tools,
        )
        started = time.perf_counter()
        response = await call_tools_async(request=request, chain=chain, context=call_context, on_text=on_text)
        result.steps.append({
            "kind": "model", "model": response.model, "ms": _elapsed_ms(started),
            "tokens_in": response.usage.input_tokens, "tokens_out": response.usage.output_tokens,
            "text": response.text, "tool_calls": [{"name": use.name, "input": use.input} for use in response.tool_uses],
        })  # fmt: skip
        result.round_trips += 1
        result.cost_usd += Decimal(str(response.cost_usd))
        result.tokens_in += response.usage.input_tokens
        result.tokens_out += response.usage.output_tokens
        result.model = response.model
        assistant = LLMMessage("assistant", response.blocks)
        messages.append(assistant)
        result.exchange.append(assistant)
        if not response.tool_uses:
            result.reply = response.text
            result.duration_ms = _elapsed_ms(turn_started)
            return result

        result.tools_called.extend(use.name for use in response.tool_uses)
        tool_results, snapshot = await in_db(_run_tools, toolset, response.tool_uses, context, result)
        messages.append(tool_results)
        result.exchange.append(tool_results)

    logger.error(
        "tool loop overflow: %s round-trips without a final answer; sent the safe reply",
        MAX_ROUND_TRIPS,
        extra={"project_id": project.pk, "chat_id": context.chat.telegram_chat_id, "tools": result.tools_called},
    )
    result.overflowed = True
    result.duration_ms = _elapsed_ms(turn_started)
    result.reply = in_language(project, SAFE_REPLY)
    result.exchange.append(LLMMessage("assistant", (TextBlock(result.reply),)))
    return result
