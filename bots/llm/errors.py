"""Errors of the LLM layer and the transient/permanent classification that drives retries.

Transient (retry the same backend with backoff): HTTP 408, 409, 429 and 5xx (Anthropic 529 included),
timeouts and connection errors, and malformed success (a body that is not JSON, an OpenAI reply without
choices or message, an Anthropic reply without content). Everything else is permanent for that backend
(400, 401, 403, 404, 422, missing keys, output that never validates): the chain moves on at once.
"""

import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from bots.llm.types import LLMError, Usage
from core.log_redaction import redact

TRANSIENT_STATUSES = frozenset({408, 409, 429})
MAX_ERROR_CHARS = 500


class MalformedResponse(LLMError):
    """A 2xx answer that cannot be used (no choices, no message, no content): retried as transient."""

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class UnparseableOutput(LLMError):
    """The model answered, but its structured output never validated (after instructor's own retry)."""

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


@dataclass(frozen=True)
class Failure:
    transient: bool
    message: str
    retry_after: float | None = None  # seconds, from Retry-After / retry-after-ms


def spent_usage(exc: BaseException) -> Usage:
    """Tokens a failed attempt still consumed (the provider bills them), for recording and cost."""
    return exc.usage if isinstance(exc, MalformedResponse | UnparseableOutput) else Usage()


def classify_failure(exc: BaseException) -> Failure:
    # The SDKs take seconds to import; loaded here (an LLM call already did) rather than at every start-up.
    import anthropic
    import openai

    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        status = exc.status_code
        transient = status in TRANSIENT_STATUSES or status >= 500
        retry_after = retry_after_seconds(exc.response.headers) if transient else None
        return Failure(transient, _short(f"HTTP {status} {type(exc).__name__}: {exc.message}"), retry_after)
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError):
        return Failure(True, "request timed out")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return Failure(True, _short(f"connection error: {exc.__cause__ or exc}"))
    if isinstance(exc, openai.APIResponseValidationError | anthropic.APIResponseValidationError):
        return Failure(True, _short(f"malformed response: {exc}"))
    if isinstance(exc, json.JSONDecodeError):
        # The openai/anthropic clients raise a plain JSONDecodeError for a truncated or non-JSON body.
        return Failure(True, _short(f"malformed response: body is not valid JSON ({exc})"))
    if isinstance(exc, MalformedResponse):
        return Failure(True, _short(f"malformed response: {exc}"))
    if isinstance(exc, LLMError):
        return Failure(False, _short(f"{type(exc).__name__}: {exc}"))
    return Failure(False, _short(f"unexpected {type(exc).__name__}: {exc}"))


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, `retry-after` as seconds or HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _short(message: str) -> str:
    message = redact(" ".join(message.split()))
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
