"""Reads of the knowledge base's freshness: which sources are failing or stale, the latest crawl reports."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from knowledge.models import SCHEDULE_INTERVALS, CrawlJob, Source
from tenants.models import Project

FAILED_RUNS_WARNING = 3  # a source that failed this many crawls in a row is flagged
STALE_FACTOR = 1.5  # a scheduled source is stale once 1.5 x its interval passed without a refresh


@dataclass(frozen=True)
class SourceWarning:
    source: Source
    kind: str  # "failing" | "stale"
    message: str


def source_warning(*, source: Source, now: datetime | None = None) -> str:
    """Why the console flags this source, or "" when it is healthy."""
    now = now or timezone.now()
    if source.failed_runs >= FAILED_RUNS_WARNING:
        reason = f": {source.last_error}" if source.last_error else ""
        return f"failed {source.failed_runs} crawls in a row{reason}"
    if source.interval is not None and source_is_stale(source=source, now=now):
        since = source.last_refreshed_at or source.created_at
        return f"not refreshed since {since:%Y-%m-%d %H:%M} UTC (schedule: {source.get_schedule_display().lower()})"
    return ""


def source_is_stale(*, source: Source, now: datetime | None = None) -> bool:
    if source.interval is None:
        return False
    now = now or timezone.now()
    return (source.last_refreshed_at or source.created_at) < now - source.interval * STALE_FACTOR


def sources_failing() -> QuerySet[Source]:
    """Every project's sources that failed FAILED_RUNS_WARNING crawls or more in a row (for the gauges)."""
    return Source.objects.filter(failed_runs__gte=FAILED_RUNS_WARNING)


def sources_stale(*, now: datetime | None = None) -> QuerySet[Source]:
    """Every project's scheduled sources not refreshed within STALE_FACTOR x their interval (for the gauges)."""
    now = now or timezone.now()
    stale = Q(pk__in=[])
    for schedule, interval in SCHEDULE_INTERVALS.items():
        stale |= Q(schedule=schedule, refreshed__lt=now - interval * STALE_FACTOR)
    return Source.objects.annotate(refreshed=Coalesce("last_refreshed_at", "created_at")).filter(stale)


def source_warnings(*, project: Project, now: datetime | None = None) -> list[SourceWarning]:
    warnings = []
    for source in project.knowledge_sources.all():
        message = source_warning(source=source, now=now)
        if message:
            kind = "failing" if source.failed_runs >= FAILED_RUNS_WARNING else "stale"
            warnings.append(SourceWarning(source=source, kind=kind, message=message))
    return warnings


def crawl_reports_latest(*, project: Project, limit: int = 5) -> list[CrawlJob]:
    """The project's latest finished crawls, newest first, for the console's crawl report section."""
    return list(project.crawl_jobs.filter(status__in=CrawlJob.FINISHED).order_by("-created_at")[:limit])


def crawl_job_summary(job: CrawlJob) -> str:
    """`2 added, 1 changed, 217 unchanged, 0 removed, 0 failed of 220`."""
    parts = [f"{job.pages_added} added", f"{job.pages_changed} changed", f"{job.pages_unchanged} unchanged",
             f"{job.pages_removed} removed", f"{job.pages_failed} failed"]  # fmt: skip
    return ", ".join(parts) + (f" of {job.total_pages}" if job.total_pages else "")
