"""The django-ninja API, mounted at the site root; docs at /api/docs (staff only). Routers per app below."""

import hmac

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from prometheus_client import CONTENT_TYPE_LATEST

from bots.api import router as telegram_router
from config.health import readiness
from core.metrics import metrics_exposition
from knowledge.api import router as knowledge_router

api = NinjaAPI(
    title="Switchboard",
    version="1",
    docs_url="/api/docs",
    openapi_url="/api/openapi.json",
    docs_decorator=staff_member_required,
    urls_namespace="api",
)


class Liveness(Schema):
    status: str


class Readiness(Schema):
    status: str
    checks: dict[str, str]


@api.get("/healthz", response=Liveness, tags=["health"], summary="Liveness")
def healthz(request: HttpRequest) -> Liveness:
    return Liveness(status="ok")


@api.get("/readyz", response={200: Readiness, 503: Readiness}, tags=["health"], summary="Readiness")
def readyz(request: HttpRequest) -> tuple[int, Readiness]:
    """Database, Redis and Qdrant reachable."""
    checks = readiness()
    ready = all(value == "ok" for value in checks.values())
    return (200 if ready else 503), Readiness(status="ok" if ready else "unavailable", checks=checks)


PROMETHEUS_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}


@api.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics of every web and worker process",
    openapi_extra={
        "responses": {
            200: {"description": "Prometheus text exposition", **PROMETHEUS_TEXT},
            401: {"description": "METRICS_TOKEN is set and the bearer token is missing or wrong", **PROMETHEUS_TEXT},
        }
    },
)
def metrics(request: HttpRequest) -> HttpResponse:
    """Text exposition; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            return HttpResponse("metrics token required", status=401, content_type="text/plain")
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


api.add_router("", telegram_router)
api.add_router("", knowledge_router)
