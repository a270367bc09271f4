"""The matching kind's gauges of what the database holds now (read at scrape time by core.metrics)."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from core.metrics import PREFIX
from matching.models import Match


def match_gauges() -> Iterator[GaugeMetricFamily]:
    matches = GaugeMetricFamily(f"{PREFIX}matches", "Matches by status", labels=["project", "status"])
    rows = Match.objects.values("project__slug", "status").annotate(count=Count("pk")).order_by()
    for row in rows:
        matches.add_metric([row["project__slug"], row["status"]], row["count"])
    yield matches
