"""Sentry, switched on by SENTRY_DSN only; events pass the same secret redaction as the logs."""

import json
from typing import Any

from core.log_redaction import redact


def event_redact(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Blank bot tokens and API keys anywhere in an event (messages, frames, breadcrumbs, request URLs)."""
    cleaned = redact(json.dumps(event, default=str))
    return json.loads(cleaned)


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,  # users' Telegram messages and names stay out of the error reports
        integrations=[DjangoIntegration(), CeleryIntegration()],
        before_send=event_redact,
        before_send_transaction=event_redact,
    )
