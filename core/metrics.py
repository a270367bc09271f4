"""Prometheus metrics of DESIGN.md ("Observability"), correct across gunicorn workers and Celery processes.

Every process writes its samples to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (set up by the
settings), and `GET /metrics` adds them up with prometheus_client's multiprocess collector. Files are
named by host and pid, so containers that share the directory on one host never write the same file.
What is a state rather than an event (open matches, running follow-up sequences, queued generations) is
read from the database at scrape time, so it is right whichever process changed it; each app registers
its own gauges (`register_state_gauges`) in its AppConfig.ready.

Label `project` is the project's slug (resolved once per process and id).
"""

import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
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


# The apps below core register how a project id becomes its label, and what state they gauge (AppConfig.ready).
ProjectLabelResolver = Callable[[int], str | None]
StateGauges = Callable[[], Iterable[GaugeMetricFamily]]
_label_resolver: list[ProjectLabelResolver] = []
_state_gauges: list[StateGauges] = []


def register_project_label_resolver(resolver: ProjectLabelResolver) -> None:
    _label_resolver[:] = [resolver]
    project_label.cache_clear()


def register_state_gauges(gauges: StateGauges) -> None:
    """An app's gauges of what the database holds now, read at scrape time."""
    if gauges not in _state_gauges:
        _state_gauges.append(gauges)


@lru_cache(maxsize=4096)
def project_label(project_id: int | None) -> str:
    """The project's slug for the `project` label (cached per process: labels must not cost a query)."""
    if project_id is None:
        return ""
    slug = _label_resolver[0](project_id) if _label_resolver else None
    return slug or str(project_id)


@contextmanager
def observe_seconds(histogram: Histogram, **labels: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - started)


class DatabaseStateCollector(Collector):
    """Gauges of what the database holds now, as each app registered them."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauges in _state_gauges:
            yield from gauges()


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
