"""The crawl API: the same validation as every entry point, operators only, tenants apart."""

import json

import pytest

from knowledge.models import CrawlJob
from tenants.models import Membership
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, project_a, project_b):
    user = MembershipFactory(project=project_a, role=Membership.Role.OPERATOR).user
    client.force_login(user)
    return client


def post(client, slug: str, body: dict):
    return client.post(f"/api/projects/{slug}/crawls", data=json.dumps(body), content_type="application/json")


def test_an_operator_starts_a_crawl_and_reads_its_report(
    operator_client, project_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as enqueued:
        response = post(operator_client, "alpha", {"urls": ["shop.example/prices"], "schedule": "weekly"})
    assert response.status_code == 202, response.content
    job = CrawlJob.objects.get(project=project_a)
    assert response.json()["id"] == job.pk
    assert response.json()["status"] == "queued"
    assert len(enqueued) == 1
    assert job.sources.get().url == "https://shop.example/prices"
    assert job.sources.get().schedule == "weekly"
    report = operator_client.get(f"/api/projects/alpha/crawls/{job.pk}")
    assert (report.status_code, report.json()["id"]) == (200, job.pk)


def test_bad_input_is_refused_with_every_problem_and_changes_nothing(operator_client):
    response = post(operator_client, "alpha", {"urls": ["not-a-url", "ftp://x.example/a"], "sitemap": "javascript:1"})
    assert response.status_code == 400
    assert response.json()["problems"] == [
        "not-a-url: not a web address", "ftp://x.example/a: only http and https addresses can be crawled",
        "sitemap javascript:1: not a web address",
    ]  # fmt: skip
    assert post(operator_client, "alpha", {}).json()["problems"] == ["nothing to crawl: give URLs, a sitemap or files"]
    assert not CrawlJob.objects.exists()


def test_other_tenants_and_strangers_get_nothing(operator_client, client, project_b):
    assert post(operator_client, "beta", {"urls": ["https://b.example/"]}).status_code == 404
    assert post(operator_client, "nope", {"urls": ["https://b.example/"]}).status_code == 404
    job = CrawlJob.objects.create(project=project_b)
    assert operator_client.get(f"/api/projects/beta/crawls/{job.pk}").status_code == 404
    assert operator_client.get(f"/api/projects/alpha/crawls/{job.pk}").status_code == 404
    operator_client.logout()
    assert post(operator_client, "alpha", {"urls": ["https://a.example/"]}).status_code == 401
    assert CrawlJob.objects.count() == 1
