"""Streamed tool calling through the real SDKs against the fake provider's Server-Sent Events."""

import itertools
import time

import pytest

from bots.event_loop import run_sync
from bots.llm import chain as chain_module
from bots.llm.chain import call_tools, call_tools_async
from bots.llm.slots import parse_chain
from bots.llm.types import AllBackendsFailed, LLMMessage, TextBlock, ToolCallRequest, ToolSpec, ToolUseBlock, Usage
from bots.models import LLMCall
from tests.fakes.llm_api import error, malformed, streamed, text, tool_calls

pytestmark = pytest.mark.django_db

SEARCH = ToolSpec(
    name="hybrid_search",
    description="Search the knowledge base",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
REQUEST = ToolCallRequest(
    system_prefix="You are Alpha's consultant.", system_suffix="State: empty",
    messages=(LLMMessage.user_text("How much is window cleaning?"),), tools=(SEARCH,),
)  # fmt: skip


def stream(*, chain: str, context, heard: list[str]):
    return run_sync(call_tools_async(request=REQUEST, chain=parse_chain(chain), context=context, on_text=heard.append))


@pytest.mark.parametrize("chain", ["openai/gpt-test", "anthropic/claude-test"])
def test_a_streamed_answer_is_heard_as_it_grows_and_ends_as_the_same_response(fake_llm, context_a, chain):
    answer = "Window cleaning costs 30 EUR per hour, materials included."
    script = fake_llm.openai if chain.startswith("openai") else fake_llm.anthropic
    script.push(text(answer, prompt_tokens=120, completion_tokens=14, cached_tokens=100))
    heard: list[str] = []

    response = stream(chain=chain, context=context_a, heard=heard)

    assert response.blocks == (TextBlock(answer),)
    assert response.usage == Usage(input_tokens=120, output_tokens=14, cached_tokens=100)
    assert len(heard) >= 5
    assert heard[-1] == answer
    assert all(answer.startswith(part) for part in heard)  # the text so far, each time
    assert all(len(a) < len(b) for a, b in itertools.pairwise(heard))
    [request] = fake_llm.requests
    assert request.body["stream"] is True
    if chain.startswith("openai"):
        assert request.body["stream_options"] == {"include_usage": True}
    [call] = LLMCall.objects.all()
    assert (call.status, call.tokens_in, call.tokens_out, call.tokens_cached) == ("ok", 120, 14, 100)
    assert call.cost_usd > 0


@pytest.mark.parametrize("chain", ["openai/gpt-test", "anthropic/claude-test"])
def test_tool_call_deltas_are_assembled_and_a_tool_round_is_not_heard_past_its_first_call(fake_llm, context_a, chain):
    script = fake_llm.openai if chain.startswith("openai") else fake_llm.anthropic
    calls = [("hybrid_search", {"query": "window cleaning price, per hour"}), ("hybrid_search", {"query": "ру́сский"})]
    script.push(tool_calls(calls, text="Let me check."))
    heard: list[str] = []

    response = stream(chain=chain, context=context_a, heard=heard)

    assert response.text == "Let me check."
    assert [(use.name, use.input) for use in response.tool_uses] == calls
    assert all(use.id for use in response.tool_uses)
    assert len({use.id for use in response.tool_uses}) == 2
    assert isinstance(response.blocks[1], ToolUseBlock)
    assert heard
    assert heard[-1] == "Let me check."
    assert response.stop_reason in ("tool_calls", "tool_use")


def test_the_listener_hears_tokens_as_they_come_not_at_the_end(fake_llm, context_a):
    fake_llm.openai.push(streamed("one two three four five six", first_token_after=0.3, total=1.3))
    heard: list[tuple[float, str]] = []

    def listen(text_so_far: str) -> None:
        heard.append((time.time(), text_so_far))

    run_sync(call_tools_async(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a, on_text=listen))
    asked_at = fake_llm.requests[0].at  # from the request's arrival: the SDK's first import takes its own time
    first, last = heard[0][0] - asked_at, heard[-1][0] - asked_at
    assert 0.25 <= first < 0.9
    assert last - first >= 0.8  # spread over the stream, not delivered in one lump


def test_a_broken_stream_is_retried_and_a_failure_falls_through_like_without_streaming(fake_llm, context_a, sleeps):
    fake_llm.openai.push(malformed({"choices": []}), error(503), text("Third time lucky"))
    heard: list[str] = []

    response = stream(chain="openai/gpt-test", context=context_a, heard=heard)

    assert response.text == "Third time lucky"
    assert heard[-1] == "Third time lucky"
    assert [c.status for c in LLMCall.objects.order_by("pk")] == ["error", "error", "ok"]
    assert "stream without an answer" in LLMCall.objects.order_by("pk")[0].error
    assert len(sleeps) == 2


def test_without_a_listener_nothing_streams(fake_llm, context_a):
    fake_llm.openai.push(text("plain"))
    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)
    assert response.text == "plain"
    assert "stream" not in fake_llm.requests[0].body


def test_a_server_that_refuses_to_stream_is_asked_for_whole_answers_from_then_on(fake_llm, context_a):
    chain_module._unstreamable.discard("openai/gpt-old")
    fake_llm.openai.push(error(400, message="stream_options is not supported"), text("Whole answer"))
    heard: list[str] = []

    response = stream(chain="openai/gpt-old", context=context_a, heard=heard)
    assert response.text == "Whole answer"
    assert heard == []  # nothing streamed, the answer still came, in the same attempt
    first, second = fake_llm.requests
    assert first.body["stream"] is True
    assert "stream" not in second.body
    assert [c.status for c in LLMCall.objects.all()] == ["ok"]

    fake_llm.openai.push(text("Again whole"))
    assert stream(chain="openai/gpt-old", context=context_a, heard=heard).text == "Again whole"
    assert "stream" not in fake_llm.requests[-1].body
    chain_module._unstreamable.discard("openai/gpt-old")


def test_a_request_bad_in_itself_does_not_switch_streaming_off(fake_llm, context_a):
    chain_module._unstreamable.discard("openai/gpt-test")
    fake_llm.openai.push(error(400, message="context too long"), error(400, message="context too long"))
    with pytest.raises(AllBackendsFailed):
        stream(chain="openai/gpt-test", context=context_a, heard=[])
    assert "openai/gpt-test" not in chain_module._unstreamable
    [call] = LLMCall.objects.all()
    assert call.status == "error"
    assert "context too long" in call.error
