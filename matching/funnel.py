"""The matching funnel of one project, counted from the rows (for the dashboard and the operators).

Users: profiles started (any row), complete (ready, active or waiting for re-confirmation), active,
introduced (in at least one introduction). Introductions: made, accepted by at least one side, connected,
talked (at least one side said so), worked out (at least one side said so). Time to first introduction:
per introduced user, from the profile's start (its first save) to their first introduction. The share of
active users introduced per round: of the users the round touched (tried, or offered as a counterpart),
how many were introduced in it.
"""

import statistics
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Min, Q

from matching.models import Match, MatchOutcome, Profile
from tenants.models import Project

ROUNDS_SHOWN = 5


@dataclass(frozen=True)
class RoundShare:
    round: int
    users: int
    introduced: int

    @property
    def share(self) -> float:
        return self.introduced / self.users if self.users else 0.0


@dataclass(frozen=True)
class Funnel:
    started: int
    complete: int
    active: int
    introduced_users: int
    introductions: int
    accepted_by_one: int
    connected: int
    talked: int
    worked_out: int
    first_introduction_median: timedelta | None
    first_introduction_max: timedelta | None
    rounds: list[RoundShare] = field(default_factory=list)

    @property
    def first_introduction_median_text(self) -> str:
        return duration_text(self.first_introduction_median)

    @property
    def first_introduction_max_text(self) -> str:
        return duration_text(self.first_introduction_max)

    @property
    def stages(self) -> list[tuple[str, str, int]]:
        """(id, label, count) in funnel order, for the template."""
        return [
            ("started", "profiles started", self.started),
            ("complete", "complete", self.complete),
            ("active", "active", self.active),
            ("introduced", "users introduced", self.introduced_users),
            ("introductions", "introductions", self.introductions),
            ("accepted", "accepted by one", self.accepted_by_one),
            ("connected", "connected", self.connected),
            ("talked", "talked", self.talked),
            ("worked", "worked out", self.worked_out),
        ]


def duration_text(value: timedelta | None) -> str:
    """A wait as people say it: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def matching_funnel(*, project: Project) -> Funnel:
    profiles = Profile.objects.filter(project=project)
    introductions = Match.objects.filter(project=project, introduced_at__isnull=False)
    outcomes = MatchOutcome.objects.filter(project=project, match__isnull=False)
    first_introduced = _first_introductions(project)
    created = dict(profiles.filter(pk__in=first_introduced).values_list("pk", "created_at"))
    waits = sorted(max(first_introduced[pk] - created[pk], timedelta(0)) for pk in created)
    return Funnel(
        started=profiles.count(),
        complete=profiles.exclude(state=Profile.State.ONBOARDING).count(),
        active=profiles.filter(state=Profile.State.ACTIVE).count(),
        introduced_users=len(first_introduced),
        introductions=introductions.count(),
        accepted_by_one=introductions.filter(first_accepted_at__isnull=False).count(),
        connected=introductions.filter(status=Match.Status.CONNECTED).count(),
        talked=outcomes.filter(talked=True).values("match").distinct().count(),
        worked_out=outcomes.filter(worked_out=True).values("match").distinct().count(),
        first_introduction_median=statistics.median_low(waits) if waits else None,
        first_introduction_max=waits[-1] if waits else None,
        rounds=_round_shares(project),
    )


def _first_introductions(project: Project) -> dict[int, object]:
    """Each introduced user's first introduction time, whichever side they were on."""
    firsts: dict[int, object] = {}
    introduced = Match.objects.filter(project=project, introduced_at__isnull=False)
    for side in ("user_a", "user_b"):
        for pk, first in introduced.values(side).annotate(first=Min("introduced_at")).values_list(side, "first"):
            if pk is not None and (pk not in firsts or first < firsts[pk]):
                firsts[pk] = first
    return firsts


def _round_shares(project: Project) -> list[RoundShare]:
    latest = list(Match.objects.filter(project=project).values_list("round", flat=True).distinct().order_by("-round"))[
        :ROUNDS_SHOWN
    ]
    shares = []
    for number in sorted(latest):
        rows = Match.objects.filter(project=project, round=number)
        touched = set(rows.values_list("user_a", flat=True)) | set(
            rows.filter(user_b__isnull=False).values_list("user_b", flat=True)
        )
        introduced_rows = rows.filter(Q(introduced_at__isnull=False))
        introduced = set(introduced_rows.values_list("user_a", flat=True)) | set(
            introduced_rows.values_list("user_b", flat=True)
        )
        shares.append(RoundShare(round=number, users=len(touched), introduced=len(introduced)))
    return shares
