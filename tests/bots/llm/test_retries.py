"""Retries, backoff, Retry-After and fallbacks along the model chain, with every attempt recorded."""

import socket

import pytest

from bots.llm import chain as chain_module
from bots.llm.chain import backoff_seconds, call_tools
from bots.llm.slots import parse_chain
from bots.llm.types import AllBackendsFailed, LLMMessage, ToolCallRequest
from bots.models import LLMCall
from tests.fakes.llm_api import error, malformed, text

pytestmark = pytest.mark.django_db

REQUEST = ToolCallRequest(system_prefix="prefix", system_suffix="suffix", messages=(LLMMessage.user_text("hi"),))
PRIMARY_THEN_FALLBACK = "openai/gpt-test,anthropic/claude-test"


def rows() -> list[tuple[str, str, int]]:
    return [(r.model, r.status, r.attempt) for r in LLMCall.objects.order_by("pk")]


def test_rate_limit_honours_retry_after_then_succeeds(fake_llm, context_a, sleeps):
    fake_llm.openai.push(error(429, retry_after=2), text("after the wait"))

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.text == "after the wait"
    assert sleeps == [2.0]
    assert rows() == [("openai/gpt-test", "error", 1), ("openai/gpt-test", "ok", 2)]
    error_row = LLMCall.objects.filter(status="error").get()
    assert "429" in error_row.error
    assert error_row.project_id == context_a.project_id


def test_anthropic_overloaded_with_retry_after(fake_llm, context_a, sleeps):
    fake_llm.anthropic.push(error(529, retry_after=3), text("fine now"))

    response = call_tools(request=REQUEST, chain=parse_chain("anthropic/claude-test"), context=context_a)

    assert response.text == "fine now"
    assert sleeps == [3.0]
    assert "529" in LLMCall.objects.get(status="error").error


def test_three_transient_failures_fall_through_to_the_next_backend(fake_llm, context_a, sleeps):
    fake_llm.fail_all("openai", 503)
    fake_llm.anthropic.push(text("from the fallback"))

    response = call_tools(request=REQUEST, chain=parse_chain(PRIMARY_THEN_FALLBACK), context=context_a)

    assert (response.text, response.model, response.provider) == (
        "from the fallback",
        "anthropic/claude-test",
        "anthropic",
    )
    assert len(fake_llm.requests_to("openai")) == 3
    assert len(sleeps) == 2  # between the three tries, none before falling through
    assert 2.0 <= sleeps[0] <= 2.2
    assert 4.0 <= sleeps[1] <= 4.4
    assert rows() == [
        ("openai/gpt-test", "error", 1),
        ("openai/gpt-test", "error", 2),
        ("openai/gpt-test", "error", 3),
        ("anthropic/claude-test", "ok", 1),
    ]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_error_falls_through_at_once(fake_llm, context_a, sleeps, status):
    fake_llm.openai.push(error(status, message="nope"))

    response = call_tools(request=REQUEST, chain=parse_chain(PRIMARY_THEN_FALLBACK), context=context_a)

    assert response.model == "anthropic/claude-test"
    assert len(fake_llm.requests_to("openai")) == 1
    assert sleeps == []
    assert rows() == [("openai/gpt-test", "error", 1), ("anthropic/claude-test", "ok", 1)]
    assert str(status) in LLMCall.objects.get(status="error").error


def test_all_backends_down_raises_one_clear_error(fake_llm, context_a, context_b, sleeps):
    fake_llm.fail_all("openai", 500)
    fake_llm.fail_all("anthropic", 529)

    with pytest.raises(AllBackendsFailed) as info:
        call_tools(request=REQUEST, chain=parse_chain(PRIMARY_THEN_FALLBACK), context=context_a)

    message = str(info.value)
    assert "openai/gpt-test (attempt 3): HTTP 500" in message
    assert "anthropic/claude-test (attempt 3): HTTP 529" in message
    assert len(sleeps) == 4
    assert LLMCall.objects.filter(status="error", project_id=context_a.project_id).count() == 6
    assert not LLMCall.objects.filter(project_id=context_b.project_id).exists()


def test_empty_choices_is_transient(fake_llm, context_a, sleeps):
    fake_llm.openai.push(
        malformed({"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-test", "choices": []}),
        text("second time lucky"),
    )

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.text == "second time lucky"
    assert len(sleeps) == 1
    assert "without choices" in LLMCall.objects.get(status="error").error


@pytest.mark.parametrize(
    "reply",
    [
        malformed('{"id": "trunc'),
        malformed("<html>bad gateway</html>", content_type="text/html"),
        malformed("<html>bad gateway</html>", 502, content_type="text/html"),
        malformed({"id": "x", "choices": [{"index": 0}]}),
    ],
    ids=["invalid-json", "html-200", "html-502", "choice-without-message"],
)
def test_malformed_openai_bodies_are_transient(fake_llm, context_a, sleeps, reply):
    fake_llm.openai.push(reply, text("ok"))

    assert call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a).text == "ok"
    assert rows() == [("openai/gpt-test", "error", 1), ("openai/gpt-test", "ok", 2)]


@pytest.mark.parametrize(
    "reply",
    [malformed('{"type": "mess'), malformed({"id": "msg_x", "type": "message", "role": "assistant"})],
    ids=["invalid-json", "no-content"],
)
def test_malformed_anthropic_bodies_are_transient(fake_llm, context_a, sleeps, reply):
    fake_llm.anthropic.push(reply, text("ok"))

    assert call_tools(request=REQUEST, chain=parse_chain("anthropic/claude-test"), context=context_a).text == "ok"
    assert len(sleeps) == 1


def test_timeout_is_transient(fake_llm, context_a, sleeps, settings):
    settings.LLM_REQUEST_TIMEOUT_SECONDS = 0.2
    fake_llm.openai.push(text("too late", delay=0.6), text("in time"))

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.text == "in time"
    assert "timed out" in LLMCall.objects.get(status="error").error


def test_long_retry_after_leaves_the_backend_instead_of_blocking(fake_llm, context_a, sleeps):
    fake_llm.openai.push(error(429, retry_after=600))

    response = call_tools(request=REQUEST, chain=parse_chain(PRIMARY_THEN_FALLBACK), context=context_a)

    assert response.model == "anthropic/claude-test"
    assert sleeps == []
    assert len(fake_llm.requests_to("openai")) == 1


def test_backoff_doubles_with_jitter_and_caps(monkeypatch):
    monkeypatch.setattr(chain_module.random, "uniform", lambda low, high: high)

    assert backoff_seconds(attempt=1, retry_after=None) == pytest.approx(2.2)
    assert backoff_seconds(attempt=2, retry_after=None) == pytest.approx(4.4)
    assert backoff_seconds(attempt=6, retry_after=None) == 60.0
    assert backoff_seconds(attempt=1, retry_after=7.5) == 7.5
    assert backoff_seconds(attempt=1, retry_after=61) is None


def test_error_text_is_redacted(fake_llm, context_a):
    fake_llm.openai.push(error(401, message="Incorrect API key provided: sk-test-openai-key-one"))

    with pytest.raises(AllBackendsFailed) as info:
        call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert "sk-test-openai-key-one" not in str(info.value)
    assert "sk-test-openai-key-one" not in LLMCall.objects.get().error
    assert "[redacted]" in LLMCall.objects.get().error


def test_connection_refused_is_transient_then_falls_through(fake_llm, context_a, sleeps, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{closed_port}/v1"

    response = call_tools(request=REQUEST, chain=parse_chain(PRIMARY_THEN_FALLBACK), context=context_a)

    assert response.model == "anthropic/claude-test"
    assert len(sleeps) == 2
    errors = [r.error for r in LLMCall.objects.filter(status="error")]
    assert len(errors) == 3
    assert all(e.startswith("connection error") for e in errors)
