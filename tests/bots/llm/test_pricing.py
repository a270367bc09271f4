"""Cost in USD from the ModelPrice table, cached tokens included, for both protocols."""

import logging
from decimal import Decimal

import pytest

from bots.llm import pricing
from bots.llm.chain import call_tools
from bots.llm.pricing import call_cost_usd
from bots.llm.slots import parse_chain
from bots.llm.types import LLMMessage, ToolCallRequest, Usage
from bots.models import LLMCall, ModelPrice
from tests.fakes.llm_api import error, text

pytestmark = pytest.mark.django_db

REQUEST = ToolCallRequest(system_prefix="prefix", system_suffix="suffix", messages=(LLMMessage.user_text("hi"),))
# (1000 - 400) * 2.00 + 400 * 0.50 + 100 * 8.00 = 2200 per million tokens
EXPECTED = Decimal("0.002200")


@pytest.fixture
def prices():
    for model in ("openai/gpt-test", "anthropic/claude-test"):
        ModelPrice.objects.create(
            model=model,
            input_per_million=Decimal("2.00"),
            cached_input_per_million=Decimal("0.50"),
            output_per_million=Decimal("8.00"),
        )


def test_cost_formula(prices):
    usage = Usage(input_tokens=1000, output_tokens=100, cached_tokens=400)

    assert call_cost_usd(model="openai/gpt-test", usage=usage) == EXPECTED
    assert call_cost_usd(model="openai/gpt-test", usage=Usage()) == 0


def test_openai_call_cost_counts_cached_tokens(fake_llm, prices, context_a):
    fake_llm.openai.push(text("hi", prompt_tokens=1000, cached_tokens=400, completion_tokens=100))

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.cost_usd == pytest.approx(float(EXPECTED))
    row = LLMCall.objects.get()
    assert (row.tokens_in, row.tokens_cached, row.tokens_out, row.cost_usd) == (1000, 400, 100, EXPECTED)


def test_anthropic_call_cost_counts_the_whole_prompt(fake_llm, prices, context_a):
    # Anthropic reports input_tokens=500 + cache_read=400 + cache_creation=100: the prompt is 1000 tokens.
    fake_llm.anthropic.push(
        text("hi", prompt_tokens=1000, cached_tokens=400, cache_creation_tokens=100, completion_tokens=100)
    )

    response = call_tools(request=REQUEST, chain=parse_chain("anthropic/claude-test"), context=context_a)

    assert response.usage == Usage(input_tokens=1000, output_tokens=100, cached_tokens=400)
    assert response.cost_usd == pytest.approx(float(EXPECTED))
    assert LLMCall.objects.get().cost_usd == EXPECTED


def test_failed_attempts_cost_nothing_and_the_response_cost_is_the_call(fake_llm, prices, context_a, sleeps):
    fake_llm.openai.push(error(500), text("hi", prompt_tokens=1000, cached_tokens=400, completion_tokens=100))

    response = call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)

    assert response.cost_usd == pytest.approx(float(EXPECTED))
    assert [r.cost_usd for r in LLMCall.objects.order_by("pk")] == [0, EXPECTED]


def test_unknown_model_counts_at_the_fallback_price_and_warns_once(fake_llm, context_a, caplog, monkeypatch, settings):
    monkeypatch.setattr(pricing, "_warned_models", set())
    caplog.set_level(logging.WARNING, logger="bots.llm.pricing")
    settings.LLM_FALLBACK_PRICE_INPUT_PER_MILLION = 3.0
    settings.LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION = 15.0

    for _ in range(2):
        fake_llm.openai.push(text("hi", prompt_tokens=1000, completion_tokens=100))
        response = call_tools(request=REQUEST, chain=parse_chain("openai/unpriced-model"), context=context_a)
        assert response.cost_usd == pytest.approx(0.0045)  # 1000 x $3 + 100 x $15 per million: never $0

    warnings = [r.getMessage() for r in caplog.records if r.name == "bots.llm.pricing"]
    assert warnings == [
        "No ModelPrice for openai/unpriced-model: its calls are counted at the fallback price ($3.0 in / $15.0 out "
        "per million tokens) until an operator adds one"
    ]
    assert all(row.cost_usd == Decimal("0.004500") for row in LLMCall.objects.all())


def test_a_provider_row_prices_all_its_models_and_an_exact_row_wins():
    ModelPrice.objects.update_or_create(model="vllm/*", defaults={"input_per_million": 0, "output_per_million": 0})
    ModelPrice.objects.create(model="vllm/big", input_per_million=Decimal("1"), output_per_million=Decimal("2"))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert call_cost_usd(model="vllm/anything", usage=usage) == 0
    assert call_cost_usd(model="vllm/big", usage=usage) == Decimal("3.000000")


def test_transcription_is_priced_per_minute_of_audio_and_an_unpriced_model_at_the_fallback(settings):
    pricing.model_prices_ensure()  # the maintained table's transcription rows
    settings.LLM_FALLBACK_PRICE_AUDIO_PER_MINUTE = 0.01

    assert ModelPrice.objects.get(model="openai/whisper-1").audio_per_minute == Decimal("0.006")
    assert call_cost_usd(model="openai/whisper-1", usage=Usage(audio_seconds=90)) == Decimal("0.009000")
    assert call_cost_usd(model="openai/gpt-4o-mini-transcribe", usage=Usage(audio_seconds=30)) == Decimal("0.001500")
    assert call_cost_usd(model="acme/ears-1", usage=Usage(audio_seconds=60)) == Decimal("0.010000")  # never $0
