"""The Telegram webhook: validate, store, enqueue, answer in milliseconds."""

import hmac
import json
import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router, Schema

from bots.gateway import MalformedUpdate
from bots.intake import update_accept
from core import metrics
from core.log_context import log_context
from tenants.models import Project

logger = logging.getLogger(__name__)
router = Router(tags=["telegram"])

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookAnswer(Schema):
    ok: bool
    description: str  # stored | duplicate | ignored, or what was wrong


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
WEBHOOK_RESPONSES = {200: WebhookAnswer, 400: WebhookAnswer, 403: WebhookAnswer, 404: WebhookAnswer}


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
    project = Project.objects.alive().filter(slug=project_slug).only("pk", "slug", "webhook_secret").first()
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
        payload = json.loads(request.body)
        result = update_accept(project=project, payload=payload)
    except (ValueError, RecursionError, MalformedUpdate) as exc:  # JSON errors are ValueErrors; nesting bombs recurse
        logger.warning("malformed update: %s", exc, extra={"project_id": project.pk})
        return _answer(400, f"malformed update: {exc}"[:200])
    return _answer(200, result.status)
