"""Prometheus metrics of DESIGN.md ("Observability"), correct across gunicorn workers and Celery processes.

Every process writes its samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (set up by the
settings), and `GET /metrics` adds them up with prometheus_client's multiprocess collector. Files are
named by host and pid, so containers that share the directory on one host never write the same file.
What is a state rather than an event (open matches, running follow-up sequences, queued generations) is
read from the database at scrape time, so it is right whichever process changed it.

Label `project` is the project's slug (resolved once per process and id).
"""

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "switchboard_"
_HOST = socket.gethostname()


def process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric exists: the value class decides which file each sample lives in.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

# Seconds: webhook answers in milliseconds; Telegram and LLM calls take up to a minute.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0)

llm_requests = Counter(
    f"{PREFIX}llm_requests_total", "LLM provider requests (each attempt)", ["provider", "method", "status"]
)
llm_request_seconds = Histogram(
    f"{PREFIX}llm_request_duration_seconds", "LLM provider request latency", ["provider", "method"],
    buckets=CALL_BUCKETS,
)  # fmt: skip
telegram_calls = Counter(f"{PREFIX}telegram_api_calls_total", "Telegram Bot API calls", ["method", "status"])
telegram_call_seconds = Histogram(
    f"{PREFIX}telegram_api_duration_seconds", "Telegram Bot API call latency", ["method"], buckets=CALL_BUCKETS
)
webhook_requests = Counter(f"{PREFIX}webhook_requests_total", "Telegram webhook requests", ["project", "status"])
webhook_request_seconds = Histogram(
    f"{PREFIX}webhook_request_duration_seconds", "Telegram webhook handling time", ["project"], buckets=FAST_BUCKETS
)
messages = Counter(
    f"{PREFIX}messages_total",
    "User messages by stage: received (stored by the webhook), processed (commands and acknowledgements "
    "done), replied and reply_failed (the turn that answered them)",
    ["project", "stage"],
)
timer_fires = Counter(
    f"{PREFIX}timer_fires_total",
    "Follow-up timer fires by action: scheduled (a timer turn queued), deferred_quiet_hours, "
    "postponed_busy, skipped (chat paused, blocked or finished)",
    ["action"],
)
leads = Counter(f"{PREFIX}leads_total", "Leads by status: finished (stored), sent, failed", ["project", "status"])
generations = Counter(f"{PREFIX}generations_total", "Generations run, by outcome", ["project", "kind", "status"])
generation_cost_usd = Counter(f"{PREFIX}generation_cost_usd_total", "LLM spend of generations", ["project", "kind"])


@lru_cache(maxsize=4096)
def project_label(project_id: int | None) -> str:
    """The project's slug for the `project` label (cached per process: labels must not cost a query)."""
    if project_id is None:
        return ""
    from tenants.models import Project

    slug = Project.objects.filter(pk=project_id).values_list("slug", flat=True).first()
    return slug or str(project_id)


@contextmanager
def observe_seconds(histogram: Histogram, **labels: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - started)


class DatabaseStateCollector(Collector):
    """Gauges of what the database holds now: matches by status, running follow-ups, queued generations."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count

        from bots.models import Generation
        from leads.models import FollowUp
        from matching.models import Match

        matches = GaugeMetricFamily(f"{PREFIX}matches", "Matches by status", labels=["project", "status"])
        rows = Match.objects.values("project__slug", "status").annotate(count=Count("pk")).order_by()
        for row in rows:
            matches.add_metric([row["project__slug"], row["status"]], row["count"])
        yield matches

        timers = GaugeMetricFamily(
            f"{PREFIX}timer_sequences_active", "Chats with a follow-up timer running", labels=["project"]
        )
        rows = FollowUp.objects.filter(fire_at__isnull=False).values("project__slug").annotate(count=Count("pk"))
        for row in rows.order_by():
            timers.add_metric([row["project__slug"]], row["count"])
        yield timers

        queued = GaugeMetricFamily(
            f"{PREFIX}generations_queued", "Generations waiting or running", labels=["project", "status"]
        )
        rows = Generation.objects.filter(status__in=Generation.ACTIVE).values("project__slug", "status")
        for row in rows.annotate(count=Count("pk")).order_by():
            queued.add_metric([row["project__slug"], row["status"]], row["count"])
        yield queued


def metrics_exposition() -> bytes:
    """The text exposition of every process's metrics plus the database gauges."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # only a process without settings gets here
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseStateCollector())
    return generate_latest(registry)


def metrics_directory_reset() -> None:
    """Forget the samples of processes of this host that are gone (an earlier run), before a new run starts.

    Files of live processes stay: their samples would silently vanish from /metrics otherwise.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    for path in Path(directory).glob("*.db"):
        host, _, pid = path.stem.rpartition("_")[2].rpartition("-")
        if host == _HOST and pid.isdigit() and not _process_alive(int(pid)):
            path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
