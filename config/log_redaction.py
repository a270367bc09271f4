"""A logging filter that blanks bot tokens and API keys wherever they appear in a record."""

import logging
import re

# Bot API tokens (`123456:AA...`, also inside `/bot<token>/` URLs) and common API key shapes.
SECRET_PATTERNS = (
    re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}"),
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
