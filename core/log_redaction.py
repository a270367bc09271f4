"""A logging filter that blanks bot tokens, API keys and webhook secrets wherever they appear in a record.

Two kinds of secrets: those with a shape (bot tokens, `sk-` keys) are found by pattern; those without one
(webhook secrets, Qdrant keys, the Django secret) are registered as exact values by the apps that know them.
"""

import logging
import re
import threading

from pythonjsonlogger.json import JsonFormatter

# Bot API tokens (`123456:AA...`, also inside `/bot<token>/` URLs) and common API key shapes.
SECRET_PATTERNS = (
    # No word boundary before the digits: in `/bot123:AA.../` a letter precedes them.
    re.compile(r"(?<!\d)\d{3,}:[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)
REDACTED = "[redacted]"
# Shorter values are too likely to be ordinary words to blank wherever they appear.
MIN_REGISTERED_SECRET_LENGTH = 8

_registered: set[str] = set()
_registered_pattern: re.Pattern[str] | None = None
_registered_lock = threading.Lock()


def secret_register(*values: str | None) -> None:
    """Blank these exact values in every redacted text from now on (in this process)."""
    global _registered_pattern
    fresh = {value for value in values if value and len(value) >= MIN_REGISTERED_SECRET_LENGTH} - _registered
    if not fresh:
        return
    with _registered_lock:
        _registered.update(fresh)
        # Longest first, so that a secret containing another is blanked whole.
        alternatives = sorted(_registered, key=len, reverse=True)
        _registered_pattern = re.compile("|".join(re.escape(value) for value in alternatives))


def redact(text: str) -> str:
    registered = _registered_pattern
    if registered is not None:
        text = registered.sub(REDACTED, text)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line; the whole line is redacted, tracebacks and extra fields included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingFormatter(logging.Formatter):
    """The plain-text twin (LOG_FORMAT=plain), for reading logs in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
