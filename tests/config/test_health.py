import pytest
from django.test import Client

from config.health import readiness
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_dependencies(client: Client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency_and_503_when_one_is_down(client: Client, settings, redis_url, tmp_path):
    settings.REDIS_URL = redis_url
    settings.QDRANT_PATH = str(tmp_path / "qdrant")
    response = client.get("/readyz")
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ok"
    # No worker owns this embedded store, so the platform is not ready.
    assert body["checks"]["qdrant"].startswith("error:")
    assert response.status_code == 503

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert readiness()["redis"].startswith("error:")


def test_readiness_is_complete_once_the_knowledge_worker_runs(celery_worker, settings, redis_url):
    assert readiness() == {"database": "ok", "redis": "ok", "qdrant": "ok"}


def test_api_docs_are_for_staff_only(client: Client):
    assert client.get("/api/docs").status_code == 302
    assert client.get("/api/openapi.json").status_code == 302
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/api/docs").status_code == 302
    client.force_login(UserFactory(is_staff=True))
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Switchboard"
