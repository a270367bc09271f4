"""A logging filter that blanks bot tokens and API keys wherever they appear in a record."""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

# Bot API tokens (`123456:AA...`, also inside `/bot<token>/` URLs) and common API key shapes.
SECRET_PATTERNS = (
    # No word boundary before the digits: in `/bot123:AA.../` a letter precedes them.
    re.compile(r"(?<!\d)\d{3,}:[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
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
