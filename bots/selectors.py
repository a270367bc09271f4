"""Reads of the engine's records for operators."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from bots.models import Generation, LLMCall
from tenants.models import Project


@dataclass(frozen=True)
class WeeklySpend:
    project: Project
    week_start: datetime
    spend_usd: Decimal

    @property
    def budget_share(self) -> float | None:
        budget = self.project.weekly_budget_usd
        return float(self.spend_usd / budget) if budget else None


def spend_by_week(*, projects: QuerySet[Project], weeks: int = 8) -> list[WeeklySpend]:
    """LLM spend per project per calendar week (Monday first), newest week first."""
    since = timezone.now() - timedelta(weeks=weeks)
    rows = (
        LLMCall.objects.filter(project__in=projects, created_at__gte=since)
        .annotate(week=TruncWeek("created_at"))
        .values("project_id", "week")
        .annotate(spend=Sum("cost_usd"))
        .order_by("-week", "project_id")
    )
    by_id = {project.pk: project for project in projects}
    return [WeeklySpend(by_id[row["project_id"]], row["week"], row["spend"] or Decimal(0)) for row in rows]


@dataclass(frozen=True)
class GenerationQueueNow:
    """A project's generation queue right now, and how long its generations waited lately."""

    due: int  # pending and due: waiting for a free slot of a turn runner
    scheduled: int  # pending, spaced by the weekly budget
    running: int  # in flight on the turn runners
    wait_p50_s: float | None  # due -> claimed, over the generations claimed in the last hour
    wait_p95_s: float | None
    waited: int


def generation_queue_now(*, project: Project, now: datetime | None = None) -> GenerationQueueNow:
    now = now or timezone.now()
    generations = Generation.objects.filter(project=project)
    pending = generations.filter(status=Generation.Status.PENDING)
    waits = sorted(
        max(0.0, (started - scheduled).total_seconds())
        for scheduled, started in generations.filter(started_at__gte=now - timedelta(hours=1))
        .values_list("scheduled_for", "started_at")
        .order_by()[:5000]
    )

    def share(fraction: float) -> float | None:
        return waits[min(len(waits) - 1, round(fraction * len(waits)))] if waits else None

    return GenerationQueueNow(
        due=pending.filter(scheduled_for__lte=now).count(),
        scheduled=pending.filter(scheduled_for__gt=now).count(),
        running=generations.filter(status=Generation.Status.RUNNING).count(),
        wait_p50_s=share(0.5),
        wait_p95_s=share(0.95),
        waited=len(waits),
    )
