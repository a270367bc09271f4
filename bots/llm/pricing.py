"""Cost of one LLM call in USD, from the operator-editable `ModelPrice` table (USD per million tokens, and
USD per minute of audio for transcription models).

A model without a row (exact `provider/model`, or a `provider/*` row for the whole provider) is counted
at the fallback price (LLM_FALLBACK_PRICE_*_PER_MILLION, LLM_FALLBACK_PRICE_AUDIO_PER_MINUTE), never at
$0: budgets and caps keep working, and the console warns that the model has no price of its own.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from bots.llm.price_table import PRICE_TABLE, TRANSCRIPTION_PRICE_TABLE
from bots.llm.types import Usage
from bots.models import ModelPrice

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
SECONDS_PER_MINUTE = Decimal(60)
MICRO_DOLLAR = Decimal("0.000001")  # the precision of the cost columns

_warned_lock = threading.Lock()
_warned_models: set[str] = set()


@dataclass(frozen=True)
class Price:
    input_per_million: Decimal
    cached_input_per_million: Decimal
    output_per_million: Decimal
    row: str  # the ModelPrice row that priced it, or "" for the fallback price
    audio_per_minute: Decimal = Decimal(0)


def fallback_price() -> Price:
    return Price(
        input_per_million=Decimal(str(settings.LLM_FALLBACK_PRICE_INPUT_PER_MILLION)),
        cached_input_per_million=Decimal(str(settings.LLM_FALLBACK_PRICE_INPUT_PER_MILLION)),
        output_per_million=Decimal(str(settings.LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION)),
        row="",
        audio_per_minute=Decimal(str(settings.LLM_FALLBACK_PRICE_AUDIO_PER_MINUTE)),
    )


# Prices already read in this agent turn (`prices_memoized`): its model calls read each price once.
_memoized: ContextVar[dict[str, Price] | None] = ContextVar("memoized_prices", default=None)


@contextmanager
def prices_memoized() -> Iterator[None]:
    """Within the block (one agent turn), a model's price is read from the table once, not on every call.

    A price an operator edits meanwhile applies from the next turn on."""
    token = _memoized.set({})
    try:
        yield
    finally:
        _memoized.reset(token)


def model_price(*, model: str) -> Price:
    """The price of `provider/model`: its own row, else its provider's `provider/*` row, else the fallback."""
    memo = _memoized.get()
    if memo is None:
        return _model_price(model)
    if model not in memo:
        memo[model] = _model_price(model)
    return memo[model]


def _model_price(model: str) -> Price:
    provider = model.partition("/")[0]
    rows = {row.model: row for row in ModelPrice.objects.filter(model__in=[model, f"{provider}/*"])}
    row = rows.get(model) or rows.get(f"{provider}/*")
    if row is None:
        return fallback_price()
    return Price(
        row.input_per_million, row.cached_input_per_million, row.output_per_million, row=row.model,
        audio_per_minute=row.audio_per_minute,
    )  # fmt: skip


def unpriced_models(*, models: list[str]) -> list[str]:
    """The models among `models` that only the fallback price covers (for the console's warning)."""
    return [model for model in dict.fromkeys(models) if not model_price(model=model).row]


def call_cost_usd(*, model: str, usage: Usage) -> Decimal:
    """(input - cached) * input + cached * cached_input + output * output, per million tokens, plus the
    minutes of audio a transcription heard at the audio price.

    `model` is the full `provider/model` id. An unpriced model is counted at the fallback price and
    logged once per process.
    """
    if not (usage.input_tokens or usage.output_tokens or usage.audio_seconds):
        return Decimal(0)
    price = model_price(model=model)
    if not price.row:
        _warn_unpriced(model, price)
    cached = min(usage.cached_tokens, usage.input_tokens)
    cost = (
        (usage.input_tokens - cached) * price.input_per_million
        + cached * price.cached_input_per_million
        + usage.output_tokens * price.output_per_million
    ) / MILLION
    if usage.audio_seconds:
        cost += Decimal(str(usage.audio_seconds)) / SECONDS_PER_MINUTE * price.audio_per_minute
    return cost.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP)


def model_prices_ensure() -> int:
    """Add the maintained table's rows that are missing; edited rows stay as the operator left them."""
    existing = set(ModelPrice.objects.values_list("model", flat=True))
    missing = [
        ModelPrice(model=model, input_per_million=Decimal(inp), cached_input_per_million=Decimal(cached),
                   output_per_million=Decimal(out))
        for model, inp, cached, out in PRICE_TABLE
        if model not in existing
    ]  # fmt: skip
    missing += [
        ModelPrice(model=model, input_per_million=0, output_per_million=0, audio_per_minute=Decimal(per_minute))
        for model, per_minute in TRANSCRIPTION_PRICE_TABLE
        if model not in existing
    ]
    ModelPrice.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


def _warn_unpriced(model: str, price: Price) -> None:
    with _warned_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    logger.warning(
        "No ModelPrice for %s: its calls are counted at the fallback price ($%s in / $%s out per million tokens) "
        "until an operator adds one",
        model,
        price.input_per_million,
        price.output_per_million,
    )
