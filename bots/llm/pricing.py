"""Cost of one LLM call in USD, from the operator-editable `ModelPrice` table (USD per million tokens)."""

import logging
import threading
from decimal import ROUND_HALF_UP, Decimal

from bots.llm.types import Usage
from bots.models import ModelPrice

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
MICRO_DOLLAR = Decimal("0.000001")  # the precision of the cost columns

_warned_lock = threading.Lock()
_warned_models: set[str] = set()


def call_cost_usd(*, model: str, usage: Usage) -> Decimal:
    """(input - cached) * input + cached * cached_input + output * output, per million tokens.

    `model` is the full `provider/model` id. An unpriced model costs 0 and is logged once per process,
    so that a missing price row is visible without flooding the log.
    """
    if not (usage.input_tokens or usage.output_tokens):
        return Decimal(0)
    price = ModelPrice.objects.filter(model=model).first()
    if price is None:
        _warn_unpriced(model)
        return Decimal(0)
    cached = min(usage.cached_tokens, usage.input_tokens)
    cost = (
        (usage.input_tokens - cached) * price.input_per_million
        + cached * price.cached_input_per_million
        + usage.output_tokens * price.output_per_million
    ) / MILLION
    return cost.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP)


def _warn_unpriced(model: str) -> None:
    with _warned_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    logger.warning("No ModelPrice for %s: its calls are recorded at $0 until an operator adds a price", model)
