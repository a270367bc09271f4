"""Reads for the project dashboard: a period's conversations, messages, leads, matches, spend, latency.

The bot's turns are counted by what really happened: replies (the model answered, or the platform without
it), fallbacks (a backup model, or the safe reply after a runaway tool loop), failures (no model answered,
or Telegram refused the reply) and paused turns (weekly cap). Commands are not messages, and latency is
measured over the model's real replies only.
"""

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from bots.models import Chat, LLMCall, Message, Turn
from leads.models import Lead
from matching.models import Match
from tenants.models import Project


class PeriodInvalid(ValueError):
    """The requested period cannot be shown; the message is safe to show to the operator."""


PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}
MAX_CUSTOM_DAYS = 366


@dataclass(frozen=True)
class Period:
    name: str  # day, week, month or custom
    start: datetime
    end: datetime  # exclusive

    @property
    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def dashboard_period(
    *,
    project: Project,
    name: str = "week",
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
) -> Period:
    """The period ending now (day, week, month) or a custom range of whole days in the project's time zone."""
    zone = ZoneInfo(project.timezone)
    now = (now or timezone.now()).astimezone(zone)
    if name in PERIOD_DAYS:
        return Period(name, now - timedelta(days=PERIOD_DAYS[name]), now)
    if name != "custom":
        raise PeriodInvalid(f"unknown period {name!r}; one of day, week, month, custom")
    if start is None or end is None:
        raise PeriodInvalid("a custom period needs a start and an end date")
    if end < start:
        raise PeriodInvalid("the end date is before the start date")
    if (end - start).days >= MAX_CUSTOM_DAYS:
        raise PeriodInvalid(f"a custom period covers at most {MAX_CUSTOM_DAYS} days")
    begin = datetime.combine(start, time.min, tzinfo=zone)
    return Period("custom", begin, datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone))


@dataclass(frozen=True)
class Dashboard:
    period: Period
    conversations: int
    messages: int
    replies: int
    failures: int
    fallbacks: int
    paused: int
    leads_by_client_status: dict[str, int]
    matches_by_status: dict[str, int]
    spend_usd: Decimal
    weekly_budget_usd: Decimal | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_samples: int
    messages_per_day: list[tuple[date, int]] = field(default_factory=list)
    spend_per_day: list[tuple[date, Decimal]] = field(default_factory=list)

    @property
    def leads(self) -> int:
        return sum(self.leads_by_client_status.values())

    @property
    def matches(self) -> int:
        return sum(self.matches_by_status.values())

    @property
    def budget_for_period_usd(self) -> Decimal | None:
        """The weekly budget prorated to the period's length, to hold the spend against."""
        if not self.weekly_budget_usd:
            return None
        seconds = Decimal((self.period.end - self.period.start).total_seconds())
        return (self.weekly_budget_usd * seconds / Decimal(7 * 86400)).quantize(Decimal("0.01"))

    @property
    def budget_share(self) -> float | None:
        budget = self.budget_for_period_usd
        return float(self.spend_usd / budget) if budget else None


def _per_day(rows: list[dict], days: list[date], value_key: str, zero: object) -> list[tuple[date, object]]:
    found = {row["day"]: row[value_key] or zero for row in rows}
    return [(day, found.get(day, zero)) for day in days]


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


BOT_TRIGGERS = (Turn.Trigger.USER, Turn.Trigger.TIMER)
SENT = Q(status=Turn.Status.SENT)
TURN_COUNTS = {
    "failures": Q(outcome=Turn.Outcome.LLM_FAILED) | Q(status=Turn.Status.FAILED),
    "paused": Q(outcome=Turn.Outcome.PAUSED) & ~Q(status=Turn.Status.FAILED),
    "fallbacks": Q(outcome__in=[Turn.Outcome.FALLBACK, Turn.Outcome.SAFE_REPLY]) & SENT,
    "replies": Q(outcome__in=[Turn.Outcome.ANSWERED, Turn.Outcome.CANNED]) & SENT,
}
REAL_REPLY = Q(outcome__in=[Turn.Outcome.ANSWERED, Turn.Outcome.FALLBACK]) & SENT


def turn_counts(*, project: Project, period: Period) -> dict[str, int]:
    """The bot's turns of the period (user messages and follow-ups) by what happened to them."""
    turns = Turn.objects.filter(
        project=project, trigger__in=BOT_TRIGGERS, created_at__gte=period.start, created_at__lt=period.end
    )
    return turns.aggregate(**{name: Count("pk", filter=condition) for name, condition in TURN_COUNTS.items()})


def reply_latencies(*, project: Project, period: Period) -> list[float]:
    """Seconds from the first message of each user turn the model answered to its reply reaching Telegram."""

    turns = (
        Turn.objects.filter(
            REAL_REPLY, project=project, trigger=Turn.Trigger.USER,
            finished_at__gte=period.start, finished_at__lt=period.end,
        )
        .annotate(first_message_at=Min("messages__created_at"))
        .exclude(first_message_at=None)
        .values_list("first_message_at", "finished_at")
    )  # fmt: skip
    return sorted(max((finished - first).total_seconds(), 0.0) for first, finished in turns)


def project_dashboard(*, project: Project, period: Period) -> Dashboard:
    window = {"project": project, "created_at__gte": period.start, "created_at__lt": period.end}
    zone = ZoneInfo(project.timezone)
    messages = Message.objects.filter(**window, command="")
    per_day_messages = list(
        messages.annotate(day=TruncDate("created_at", tzinfo=zone)).values("day").annotate(count=Count("pk"))
    )
    calls = LLMCall.objects.filter(**window)
    per_day_spend = list(
        calls.annotate(day=TruncDate("created_at", tzinfo=zone)).values("day").annotate(spend=Sum("cost_usd"))
    )
    leads = Lead.objects.filter(**window).values("client_status").annotate(count=Count("pk")).order_by("client_status")
    matches = (
        Match.objects.filter(**window)
        .exclude(status=Match.Status.UNMATCHED)
        .values("status")
        .annotate(count=Count("pk"))
    )
    status_labels = dict(Match.Status.choices)
    latencies = reply_latencies(project=project, period=period)
    counts = turn_counts(project=project, period=period)
    return Dashboard(
        period=period,
        conversations=Chat.objects.filter(
            project=project,
            messages__created_at__gte=period.start,
            messages__created_at__lt=period.end,
            messages__command="",
        )
        .distinct()
        .count(),
        messages=messages.count(),
        **counts,
        leads_by_client_status={row["client_status"] or "unknown": row["count"] for row in leads},
        matches_by_status={status_labels.get(row["status"], row["status"]): row["count"] for row in matches},
        spend_usd=calls.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0),
        weekly_budget_usd=project.weekly_budget_usd,
        latency_p50_s=_percentile(latencies, 0.50),
        latency_p95_s=_percentile(latencies, 0.95),
        latency_samples=len(latencies),
        messages_per_day=_per_day(per_day_messages, period.days, "count", 0),
        spend_per_day=_per_day(per_day_spend, period.days, "spend", Decimal(0)),
    )
