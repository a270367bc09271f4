"""Structured outputs through instructor for both providers, on the same chain, retries and records."""

import pytest
from pydantic import BaseModel, Field

from bots.llm.errors import UnparseableOutput
from bots.llm.slots import parse_chain
from bots.llm.structured import structured_output
from bots.llm.types import AllBackendsFailed, Usage
from bots.models import LLMCall
from tests.fakes.llm_api import error, malformed, text, tool_call

pytestmark = pytest.mark.django_db

SYSTEM = "Extract the profile from the message."
USER = "I'm Ann, 31, a Python developer from Berlin."


class Profile(BaseModel):
    name: str = Field(description="First name")
    age: int = Field(description="Age in years")


def extract(chain: str, context, **kwargs):
    return structured_output(
        response_model=Profile, system=SYSTEM, user=USER, chain=parse_chain(chain), context=context, **kwargs
    )


def test_openai_structured_output(fake_llm, context_b):
    fake_llm.openai.push(tool_call("Profile", {"name": "Ann", "age": 31}, prompt_tokens=200, cached_tokens=50))

    result = extract("openai/gpt-test", context_b, max_tokens=300, temperature=0.0)

    assert result.output == Profile(name="Ann", age=31)
    assert (result.provider, result.model) == ("openai", "openai/gpt-test")
    assert result.usage == Usage(input_tokens=200, output_tokens=5, cached_tokens=50)
    [req] = fake_llm.requests_to("openai")
    body = req.body
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Profile"}}
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("gpt-test", 300, 0.0)
    row = LLMCall.objects.get()
    assert (row.method, row.status, row.project_id, row.purpose) == (
        "structured",
        "ok",
        context_b.project_id,
        "extraction",
    )


def test_anthropic_structured_output(fake_llm, context_b):
    fake_llm.anthropic.push(
        tool_call("Profile", {"name": "Ann", "age": 31}, prompt_tokens=200, cached_tokens=50, cache_creation_tokens=20)
    )

    result = extract("anthropic/claude-test", context_b)

    assert result.output == Profile(name="Ann", age=31)
    assert result.usage == Usage(input_tokens=200, output_tokens=5, cached_tokens=50)
    body = fake_llm.requests_to("anthropic")[0].body
    assert body["system"] == SYSTEM
    assert body["messages"] == [{"role": "user", "content": USER}]
    assert body["tool_choice"]["type"] == "tool"
    assert body["tool_choice"]["name"] == "Profile"
    assert body["max_tokens"] == 1024
    assert "temperature" not in body  # rejected by the Messages API since 2026-10-21
    assert LLMCall.objects.get().provider == "anthropic"


def test_one_validation_retry_inside_the_attempt_and_its_tokens_count(fake_llm, context_b):
    fake_llm.openai.push(
        tool_call("Profile", {"name": "Ann", "age": "thirty-one"}, prompt_tokens=100, completion_tokens=5),
        tool_call("Profile", {"name": "Ann", "age": 31}, prompt_tokens=150, completion_tokens=5),
    )

    result = extract("openai/gpt-test", context_b)

    assert result.output.age == 31
    assert result.usage == Usage(input_tokens=250, output_tokens=10)
    assert len(fake_llm.requests_to("openai")) == 2
    [row] = LLMCall.objects.all()
    assert (row.status, row.attempt, row.tokens_in) == ("ok", 1, 250)


@pytest.mark.parametrize(("api", "chain"), [("openai", "openai/gpt-test"), ("anthropic", "anthropic/claude-test")])
def test_output_that_never_validates_is_a_clear_error(fake_llm, context_b, sleeps, api, chain):
    getattr(fake_llm, api).push(tool_call("Profile", {"name": "Ann"}), text("I'd rather not say."))

    with pytest.raises(UnparseableOutput, match="never validated") as info:
        extract(chain, context_b)

    assert "did not validate" in str(info.value)
    assert len(fake_llm.requests_to(api)) == 2  # instructor's single validation retry, no backoff retries
    assert sleeps == []
    [row] = LLMCall.objects.all()
    assert (row.status, row.tokens_in) == ("error", 20)  # both billed completions are recorded
    assert "did not validate" in row.error


def test_unparseable_output_falls_through_to_the_next_model(fake_llm, context_b):
    fake_llm.openai.push(tool_call("Profile", {"age": 1}), tool_call("Profile", {"age": 2}))
    fake_llm.anthropic.push(tool_call("Profile", {"name": "Ann", "age": 31}))

    result = extract("openai/gpt-test,anthropic/claude-test", context_b)

    assert (result.output.name, result.model) == ("Ann", "anthropic/claude-test")
    assert [(r.model, r.status) for r in LLMCall.objects.order_by("pk")] == [
        ("openai/gpt-test", "error"),
        ("anthropic/claude-test", "ok"),
    ]


def test_structured_retries_transient_errors_with_retry_after(fake_llm, context_b, sleeps):
    fake_llm.anthropic.push(error(429, retry_after=2), tool_call("Profile", {"name": "Ann", "age": 31}))

    result = extract("anthropic/claude-test", context_b)

    assert result.output.name == "Ann"
    assert sleeps == [2.0]
    assert [(r.status, r.attempt) for r in LLMCall.objects.order_by("pk")] == [("error", 1), ("ok", 2)]


def test_structured_malformed_body_is_transient(fake_llm, context_b, sleeps):
    fake_llm.openai.push(
        malformed({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}),
        tool_call("Profile", {"name": "Ann", "age": 31}),
    )

    assert extract("openai/gpt-test", context_b).output.age == 31
    assert len(sleeps) == 1
    assert "without choices" in LLMCall.objects.get(status="error").error


def test_structured_all_down_is_all_backends_failed(fake_llm, context_b):
    fake_llm.fail_all("openai", 503)
    fake_llm.fail_all("anthropic", 400)

    with pytest.raises(AllBackendsFailed):
        extract("openai/gpt-test,anthropic/claude-test", context_b)

    assert LLMCall.objects.filter(status="error").count() == 4


def test_output_truncated_at_max_tokens_is_unparseable(fake_llm, context_b):
    truncated = {
        "id": "chatcmpl-t",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "Profile", "arguments": '{"name": "An'}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 16, "total_tokens": 56},
    }
    fake_llm.openai.push(malformed(truncated))

    with pytest.raises(UnparseableOutput, match="truncated at max_tokens"):
        extract("openai/gpt-test", context_b, max_tokens=16)

    row = LLMCall.objects.get()
    assert (row.status, row.tokens_in, row.tokens_out) == ("error", 40, 16)
