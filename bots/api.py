"""The Telegram webhook: validate, store, enqueue, answer in milliseconds."""

import hmac
import json
import logging
import math
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router, Schema

from bots.gateway import INT64, MalformedUpdate
from bots.intake import update_accept, update_quarantine
from core import metrics
from core.log_context import log_context
from tenants.models import Project

logger = logging.getLogger(__name__)
router = Router(tags=["telegram"])

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class WebhookAnswer(Schema):
    ok: bool
    description: str  # stored | duplicate | ignored | quarantined, or what was wrong


# The view reads the raw body itself (it must answer fast and store the update as sent); the schema says
# what Telegram posts, so that the docs and API fuzzers know the shape.
WEBHOOK_OPENAPI = {
    "parameters": [{"in": "header", "name": SECRET_HEADER, "required": True, "schema": {"type": "string"}}],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["update_id"], "additionalProperties": True,
            "properties": {"update_id": {"type": "integer"}, "message": {"type": "object"},
                           "callback_query": {"type": "object"}},
        }}},
    },
}  # fmt: skip
WEBHOOK_RESPONSES = {200: WebhookAnswer, 400: WebhookAnswer, 403: WebhookAnswer, 404: WebhookAnswer, 503: WebhookAnswer}


def _answer(status: int, description: str) -> JsonResponse:
    return JsonResponse({"ok": status == 200, "description": description}, status=status)


@router.post(
    "/telegram/webhook/{project_slug}/",
    summary="Telegram webhook of one project",
    response=WEBHOOK_RESPONSES,
    openapi_extra=WEBHOOK_OPENAPI,
)
def telegram_webhook(request: HttpRequest, project_slug: str) -> HttpResponse:
    started = time.perf_counter()
    try:
        project = Project.objects.alive().filter(slug=project_slug).only("pk", "slug", "webhook_secret").first()
    except DATABASE_UNAVAILABLE as exc:
        return _database_unavailable(exc, project_id=None)
    # An unknown slug gets one shared label, so that scanners cannot grow the metric without bound.
    label = project.slug if project is not None else "(unknown)"
    with log_context(project_id=project.pk if project else None):
        response = _webhook_handle(request, project)
    metrics.webhook_requests.labels(project=label, status=str(response.status_code)).inc()
    metrics.webhook_request_seconds.labels(project=label).observe(time.perf_counter() - started)
    return response


def _webhook_handle(request: HttpRequest, project: Project | None) -> HttpResponse:
    if project is None:
        return _answer(404, "unknown project")
    secret = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(secret.encode(), project.webhook_secret.encode()):
        logger.warning("webhook with a wrong secret", extra={"project_id": project.pk})
        return _answer(403, "wrong secret token")
    try:
        body = request.body
        payload = json_loads_strict(body)
    except RequestDataTooBig:
        return _malformed(project, f"the body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    except (ValueError, RecursionError) as exc:  # JSON errors are ValueErrors; nesting bombs recurse
        return _malformed(project, exc)
    try:
        result = update_accept(project=project, payload=payload)
    except MalformedUpdate as exc:
        return _malformed(project, exc)
    except DATABASE_UNAVAILABLE as exc:
        return _database_unavailable(exc, project_id=project.pk)
    except Exception as exc:  # the last guard: an update the code cannot store must not come back forever
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        update_id = update_id if isinstance(update_id, int) and INT64[0] <= update_id <= INT64[1] else None
        deliveries = update_quarantine(project=project, body=body, update_id=update_id, error=exc)
        logger.exception(
            "update quarantined (delivery %d): %s", deliveries, type(exc).__name__,
            extra={"project_id": project.pk, "update_id": update_id},
        )  # fmt: skip
        return _answer(200, "quarantined")
    return _answer(200, result.status)


def _database_unavailable(exc: Exception, *, project_id: int | None) -> JsonResponse:
    # The database is down or restarting: nothing was stored, so Telegram's redelivery is what we want.
    logger.warning("database unavailable, update left to redelivery: %s", exc, extra={"project_id": project_id})
    return _answer(503, "database unavailable, deliver again later")


def _malformed(project: Project, problem: object) -> JsonResponse:
    logger.warning("malformed update: %s", problem, extra={"project_id": project.pk})
    return _answer(400, f"malformed update: {problem}"[:200])


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf, which jsonb refuses like Infinity
        raise ValueError(f"{text[:40]} does not fit a float")
    return value


def json_loads_strict(body: bytes) -> object:
    """RFC 8259 JSON: Python's json reads NaN and Infinity, which PostgreSQL's jsonb refuses; here they are errors."""
    return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
