"""Reads of the engine's records for operators."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from bots.models import LLMCall
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
