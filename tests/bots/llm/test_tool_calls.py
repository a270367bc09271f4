"""Tool calling through the real SDKs against the fake provider server: what crosses the wire both ways."""

import json

import pytest

from bots.event_loop import on_loop_thread
from bots.llm import chain
from bots.llm.chain import call_tools
from bots.llm.slots import parse_chain
from bots.llm.tool_arguments import RAW_ARGUMENTS_KEY, unparsed_arguments
from bots.llm.types import (
    LLMMessage,
    TextBlock,
    ToolCallRequest,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from bots.models import LLMCall
from tests.fakes.llm_api import malformed, text, tool_call

pytestmark = pytest.mark.django_db

SEARCH = ToolSpec(
    name="hybrid_search",
    description="Search the knowledge base",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
PREFIX = "You are Alpha Cleaning's consultant. Tools: hybrid_search."
SUFFIX = "State: notes=empty"
THREAD = (
    LLMMessage.user_text("How much does cleaning cost?"),
    LLMMessage("assistant", (TextBlock("Let me check."), ToolUseBlock("call_1", "hybrid_search", {"query": "price"}))),
    LLMMessage("user", (ToolResultBlock("call_1", "Cleaning: 30 EUR/hour"),)),
)
REQUEST = ToolCallRequest(system_prefix=PREFIX, system_suffix=SUFFIX, messages=THREAD, tools=(SEARCH,))


def test_openai_round_trip(fake_llm, context_a):
    fake_llm.openai.push(tool_call("hybrid_search", {"query": "windows"}, call_id="call_2", text="One more look"))

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.blocks == (
        TextBlock("One more look"),
        ToolUseBlock("call_2", "hybrid_search", {"query": "windows"}),
    )
    assert (response.provider, response.model, response.stop_reason) == ("openai", "openai/gpt-test", "tool_calls")
    assert response.usage == Usage(input_tokens=10, output_tokens=5, cached_tokens=0)
    [req] = fake_llm.requests_to("openai")
    body = req.body
    assert body["model"] == "gpt-test"
    assert "tool_choice" not in body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "hybrid_search", "description": SEARCH.description, "parameters": SEARCH.parameters},
        }
    ]
    system, user, assistant, tool = body["messages"]
    assert system == {"role": "system", "content": f"{PREFIX}\n\n{SUFFIX}"}
    assert user == {"role": "user", "content": "How much does cleaning cost?"}
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "Let me check."
    assert assistant["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "hybrid_search", "arguments": '{"query": "price"}'}}
    ]
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "Cleaning: 30 EUR/hour"}
    [row] = LLMCall.objects.all()
    assert (row.project_id, row.purpose, row.provider, row.model, row.method) == (
        context_a.project_id, "chat_turn", "openai", "openai/gpt-test", "tools",
    )  # fmt: skip
    assert (row.status, row.attempt, row.tokens_in, row.tokens_out) == ("ok", 1, 10, 5)


def test_anthropic_round_trip_caches_the_prefix_only(fake_llm, context_a):
    fake_llm.anthropic.push(text("Cleaning costs 30 EUR per hour.", prompt_tokens=500, cached_tokens=300))
    thread = (*THREAD[:2], LLMMessage("user", (ToolResultBlock("call_1", "no such page", is_error=True),)))
    request = ToolCallRequest(system_prefix=PREFIX, system_suffix=SUFFIX, messages=thread, tools=(SEARCH,))

    response = call_tools(request=request, chain=parse_chain("anthropic/claude-test"), context=context_a)

    assert response.text == "Cleaning costs 30 EUR per hour."
    assert response.tool_uses == []
    assert (response.model, response.stop_reason) == ("anthropic/claude-test", "end_turn")
    assert response.usage == Usage(input_tokens=500, output_tokens=5, cached_tokens=300)
    [req] = fake_llm.requests_to("anthropic")
    body = req.body
    assert body["model"] == "claude-test"
    assert "tool_choice" not in body
    assert body["system"] == [
        {"type": "text", "text": PREFIX, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": SUFFIX},
    ]
    assert body["tools"] == [
        {"name": "hybrid_search", "description": SEARCH.description, "input_schema": SEARCH.parameters}
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "How much does cleaning cost?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "hybrid_search", "input": {"query": "price"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "no such page", "is_error": True}],
        },
    ]
    [row] = LLMCall.objects.all()
    assert (row.provider, row.tokens_in, row.tokens_cached, row.status) == ("anthropic", 500, 300, "ok")


def test_anthropic_tool_use_reply_becomes_neutral_blocks(fake_llm, context_b):
    fake_llm.anthropic.push(tool_call("hybrid_search", {"query": "окна"}, call_id="toolu_9", text="Ищу"))

    response = call_tools(request=REQUEST, chain=parse_chain("anthropic/claude-test"), context=context_b)

    assert response.blocks == (TextBlock("Ищу"), ToolUseBlock("toolu_9", "hybrid_search", {"query": "окна"}))
    assert response.stop_reason == "tool_use"
    assert LLMCall.objects.get().project_id == context_b.project_id


def test_openai_arguments_that_do_not_parse_become_raw_arguments(fake_llm, context_a):
    fake_llm.openai.push(
        malformed(
            {
                "id": "chatcmpl-x",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-test",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "hybrid_search", "arguments": '{"query": "pri'},
                                },
                                {"id": "c2", "type": "function", "function": {"name": "get_state", "arguments": ""}},
                            ],
                        },
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )
    )

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    broken, empty = response.tool_uses
    assert broken.input == {RAW_ARGUMENTS_KEY: '{"query": "pri'}
    assert unparsed_arguments(broken) == '{"query": "pri'
    assert (empty.name, empty.input, unparsed_arguments(empty)) == ("get_state", {}, None)
    # Replaying such a turn keeps valid JSON on the wire.
    replay = ToolCallRequest(PREFIX, SUFFIX, (*THREAD, LLMMessage("assistant", response.blocks)))
    call_tools(request=replay, chain=parse_chain("openai/gpt-test"), context=context_a)
    last = fake_llm.requests_to("openai")[-1].body["messages"][-1]
    assert json.loads(last["tool_calls"][0]["function"]["arguments"]) == {RAW_ARGUMENTS_KEY: '{"query": "pri'}
    assert last["content"] is None


def test_wire_model_is_the_part_after_the_first_slash(fake_llm, context_a):
    call_tools(request=REQUEST, chain=parse_chain("openrouter/z-ai/glm-5.1"), context=context_a)

    [req] = fake_llm.requests_to("openai")
    assert req.body["model"] == "z-ai/glm-5.1"
    row = LLMCall.objects.get()
    assert (row.provider, row.model) == ("openrouter", "openrouter/z-ai/glm-5.1")


def test_no_tools_means_no_tools_field(fake_llm, context_a):
    request = ToolCallRequest(system_prefix=PREFIX, system_suffix="", messages=(LLMMessage.user_text("hi"),))

    call_tools(request=request, chain=parse_chain("openai/gpt-test"), context=context_a)
    call_tools(request=request, chain=parse_chain("anthropic/claude-test"), context=context_a)

    openai_body, anthropic_body = (r.body for r in fake_llm.requests)
    assert "tools" not in openai_body
    assert openai_body["messages"][0] == {"role": "system", "content": PREFIX}
    assert "tools" not in anthropic_body
    assert anthropic_body["system"] == [{"type": "text", "text": PREFIX, "cache_control": {"type": "ephemeral"}}]


def test_the_sdks_load_off_the_event_loop_on_the_first_call(fake_llm, context_a, monkeypatch):
    """Importing openai / anthropic takes seconds of CPU: on the loop it would stall every turn in flight."""
    loaded_on: list[bool] = []
    load = chain._backends_load
    monkeypatch.setattr(chain, "_backends", {})
    monkeypatch.setattr(chain, "_backends_load", lambda: (loaded_on.append(on_loop_thread()), load()))
    fake_llm.openai.push(text("Hello"), text("Hello again"))

    call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)
    call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert loaded_on == [False]  # once, on a thread
