"""The engine's gauges of what the database holds now (read at scrape time by core.metrics)."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from bots.models import Generation
from core.metrics import PREFIX


def generation_gauges() -> Iterator[GaugeMetricFamily]:
    queued = GaugeMetricFamily(
        f"{PREFIX}generations_queued", "Generations waiting or running", labels=["project", "status"]
    )
    rows = Generation.objects.filter(status__in=Generation.ACTIVE).values("project__slug", "status")
    for row in rows.annotate(count=Count("pk")).order_by():
        queued.add_metric([row["project__slug"], row["status"]], row["count"])
    yield queued
