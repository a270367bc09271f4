"""Failing and stale sources: warned about on the console and counted by the gauges, per tenant."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.metrics import metrics_exposition
from knowledge.gauges import source_gauges
from knowledge.models import Source
from knowledge.selectors import source_warnings

pytestmark = pytest.mark.django_db


def source(project, url: str, **fields) -> Source:
    created = fields.pop("created_ago", timedelta(0))
    row = Source.objects.create(project=project, kind="url", url=url, **fields)
    Source.objects.filter(pk=row.pk).update(created_at=timezone.now() - created)
    row.refresh_from_db()
    return row


def gauge_values() -> dict[tuple[str, str], float]:
    return {(family.name, sample.labels["project"]): sample.value
            for family in source_gauges() for sample in family.samples}  # fmt: skip


def test_failing_and_stale_sources_are_warned_about_and_counted(project_a, project_b):
    now = timezone.now()
    failing = source(project_a, "https://a.example/down", failed_runs=3, last_error="sitemap: HTTP 503")
    source(project_a, "https://a.example/flaky", failed_runs=2)  # not yet
    stale = source(project_a, "https://a.example/old", schedule="hourly", last_refreshed_at=now - timedelta(hours=2))
    source(project_a, "https://a.example/fresh", schedule="daily", last_refreshed_at=now - timedelta(hours=30))
    source(project_a, "https://a.example/off", schedule="off", created_ago=timedelta(days=90))
    never = source(project_b, "https://b.example/new", schedule="weekly", created_ago=timedelta(days=11))

    warnings = {warning.source: warning for warning in source_warnings(project=project_a)}
    assert set(warnings) == {failing, stale}
    assert warnings[failing].message == "failed 3 crawls in a row: sitemap: HTTP 503"
    assert warnings[stale].message.startswith("not refreshed since ")
    assert [w.source for w in source_warnings(project=project_b)] == [never]

    values = gauge_values()
    assert values[("switchboard_knowledge_sources_failing", "alpha")] == 1
    assert values[("switchboard_knowledge_sources_stale", "alpha")] == 1
    assert values[("switchboard_knowledge_sources_failing", "beta")] == 0
    assert values[("switchboard_knowledge_sources_stale", "beta")] == 1
    assert b"switchboard_knowledge_sources_stale" in metrics_exposition()
