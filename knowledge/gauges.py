"""The knowledge base's gauges of what the database holds now (read at scrape time by core.metrics)."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from core.metrics import PREFIX
from knowledge.selectors import FAILED_RUNS_WARNING, STALE_FACTOR, sources_failing, sources_stale
from tenants.models import Project


def source_gauges() -> Iterator[GaugeMetricFamily]:
    failing = GaugeMetricFamily(
        f"{PREFIX}knowledge_sources_failing",
        f"Knowledge sources whose last {FAILED_RUNS_WARNING} or more crawls failed in a row",
        labels=["project"],
    )
    stale = GaugeMetricFamily(
        f"{PREFIX}knowledge_sources_stale",
        f"Scheduled knowledge sources not refreshed for {STALE_FACTOR} times their schedule's interval",
        labels=["project"],
    )
    slugs = dict(Project.objects.filter(kind=Project.Kind.SALES).values_list("pk", "slug"))
    for gauge, sources in ((failing, sources_failing()), (stale, sources_stale())):
        counts = dict(sources.values("project_id").annotate(n=Count("pk")).order_by().values_list("project_id", "n"))
        for project_id, slug in slugs.items():
            gauge.add_metric([slug], counts.get(project_id, 0))
        yield gauge
