"""A generic HTTP CRM: each lead is POSTed as JSON to the project's webhook URL, signed with its secret.

Receivers verify `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the raw body>` and drop repeats by
`X-Switchboard-Delivery`, which is the same on every retry of one delivery. That key is what makes it
safe to resend after a timeout, when the first request may have arrived.

The secret and the URL's query string (which may carry a token) never appear in logs or errors.
"""

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.utils import timezone

from core.log_redaction import redact
from leads.crm.base import CrmError, CrmPermanentError, ProgressHook, refuse_other_tenants
from leads.models import CrmWebhook, Lead
from leads.transcript import lead_transcript

logger = logging.getLogger(__name__)

EVENT_CREATED = "lead.created"
EVENT_UPDATED = "lead.updated"
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 1.0  # 1, 2, 4 s between the four attempts, plus up to 10% jitter
MAX_RETRY_AFTER_SECONDS = 30.0  # a longer Retry-After is capped: a worker is not parked for minutes
_RETRYABLE_STATUSES = {429} | set(range(500, 600))
# Transport errors that no retry can fix: the URL itself is unusable.
_PERMANENT_TRANSPORT_ERRORS = (httpx.UnsupportedProtocol, httpx.InvalidURL)

sleep = time.sleep  # module level so tests can record the waits instead of sleeping


@dataclass(frozen=True)
class _Retry:
    problem: str  # safe to log: no secret, no URL query
    wait: float


class HttpWebhookCrm:
    """One active CrmWebhook of a project."""

    def __init__(self, webhook: CrmWebhook) -> None:
        self.webhook = webhook
        self.name = f"webhook:{webhook.pk}"

    def send(
        self, lead: Lead, *, partial_refs: dict[str, Any] | None = None, on_progress: ProgressHook | None = None
    ) -> dict[str, Any]:
        # One request, nothing partial to record. A retry simply posts again: the receiver drops the repeat by
        # its delivery key.
        return self._deliver(lead, event=EVENT_CREATED, delivery=f"{lead.pk}-{self.name}")

    def refresh(self, lead: Lead, refs: dict[str, Any]) -> dict[str, Any]:
        # Each update is its own delivery (the created key would make the receiver drop it as a repeat),
        # and stays the same across retries of that update.
        delivery = f"{lead.pk}-{self.name}-update-{lead.updates_after_dispatch}"
        return {**refs, **self._deliver(lead, event=EVENT_UPDATED, delivery=delivery)}

    def _deliver(self, lead: Lead, *, event: str, delivery: str) -> dict[str, Any]:
        refuse_other_tenants(project_id=self.webhook.project_id, lead=lead, backend=self.name)
        body = json.dumps(lead_payload(lead, event=event), ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Switchboard-CRM/1",
            "X-Switchboard-Event": event,
            "X-Switchboard-Delivery": delivery,
            "X-Switchboard-Signature": f"sha256={sign(self.webhook.secret, body)}",
        }
        status = self._post_with_retries(body, headers, extra={"project_id": lead.project_id, "lead_id": lead.pk})
        return {"status_code": status}

    def _post_with_retries(self, body: bytes, headers: dict[str, str], *, extra: dict[str, Any]) -> int:
        """POST until accepted (its HTTP status), at most MAX_ATTEMPTS times with backoff in between."""
        target = _safe_url(self.webhook.url)
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                outcome = self._attempt(client, body, headers, attempt=attempt, target=target)
                if isinstance(outcome, int):
                    return outcome
                if attempt == MAX_ATTEMPTS:
                    raise CrmError(f"{self.name} ({target}): {outcome.problem}; gave up after {attempt} attempts")
                logger.warning(
                    "%s (%s): %s; retrying in %.1f s", self.name, target, outcome.problem, outcome.wait, extra=extra
                )
                sleep(outcome.wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(
        self, client: httpx.Client, body: bytes, headers: dict[str, str], *, attempt: int, target: str
    ) -> int | _Retry:
        """One POST: the HTTP status when accepted, or what went wrong and how long to wait."""
        try:
            response = client.post(self.webhook.url, content=body, headers=headers)
        except _PERMANENT_TRANSPORT_ERRORS as exc:
            raise CrmPermanentError(f"{self.name} ({target}): unusable URL: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:  # refused, reset, timed out: the delivery key makes resending safe
            return _Retry(redact(f"{type(exc).__name__}: {exc}"), _backoff(attempt))
        if response.is_success:
            return response.status_code
        if response.status_code not in _RETRYABLE_STATUSES:
            raise CrmPermanentError(f"{self.name} ({target}): refused with HTTP {response.status_code}")
        return _Retry(f"HTTP {response.status_code}", _retry_after(response) or _backoff(attempt))


def lead_payload(lead: Lead, *, event: str) -> dict[str, Any]:
    """The JSON document a webhook receives for a lead."""
    return {
        "event": event,
        "lead_id": lead.pk,
        "project": lead.project.slug,
        "status": lead.status,
        "summary": lead.summary,
        "notes": lead.notes,
        "client_status": lead.client_status,
        "name": lead.name,
        "city": lead.city,
        "service": lead.service,
        "contact": lead.contact,
        "shared_contact": lead.shared_contact,
        "files": [_file_json(file) for file in lead.files or [] if isinstance(file, dict)],
        "transcript": lead_transcript(lead),
        "created_at": lead.created_at.isoformat(),
    }


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of the raw body, keyed with the webhook's secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _file_json(file: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "file_id", "file_unique_id", "file_name", "mime_type", "file_size")
    return {key: file.get(key) for key in keys}


def _backoff(attempt: int) -> float:
    base = BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
    return base + random.uniform(0, base / 10)  # jitter keeps many retrying workers from arriving together


def _retry_after(response: httpx.Response) -> float | None:
    """The receiver's Retry-After (seconds or an HTTP date), capped; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _safe_url(url: str) -> str:
    # Scheme, host and path only: credentials in the userinfo or the query string stay out of logs.
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
