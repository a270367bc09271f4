"""The sales kind's gauges of what the database holds now (read at scrape time by core.metrics)."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from core.metrics import PREFIX
from leads.models import FollowUp


def followup_gauges() -> Iterator[GaugeMetricFamily]:
    timers = GaugeMetricFamily(
        f"{PREFIX}timer_sequences_active", "Chats with a follow-up timer running", labels=["project"]
    )
    rows = FollowUp.objects.filter(fire_at__isnull=False).values("project__slug").annotate(count=Count("pk"))
    for row in rows.order_by():
        timers.add_metric([row["project__slug"]], row["count"])
    yield timers
