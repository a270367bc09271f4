"""A known set of matching rows for the funnel's tests (selector and dashboard)."""

from datetime import timedelta

from django.utils import timezone

from bots.models import Chat
from matching.models import Match, MatchOutcome, Profile
from tests.matching.dialogue import active_profile, toward

# What matching_funnel must count for the rows `funnel_rows` makes.
EXPECTED = {
    "started": 7,
    "complete": 6,
    "active": 5,
    "introduced": 4,
    "introductions": 3,
    "accepted": 2,
    "connected": 1,
    "talked": 1,
    "worked": 1,
}


def funnel_rows(project, *, base: int = 0) -> dict[str, Profile]:
    """7 profiles: one onboarding, one ready, five active; three introductions, one connected and worked out."""
    now = timezone.now()
    chat = Chat.objects.create(project=project, telegram_chat_id=base + 1, user_id=base + 1)
    Profile.objects.create(project=project, chat=chat, summary="still talking")  # started, not complete
    chat = Chat.objects.create(project=project, telegram_chat_id=base + 2, user_id=base + 2)
    Profile.objects.create(project=project, chat=chat, role="seeker", summary="s", matching_summary="s",
                           state=Profile.State.READY)  # fmt: skip
    people = {
        name: active_profile(project, base + number, role, toward(0, 0.9, number))
        for number, (name, role) in enumerate(
            [("s1", "seeker"), ("s2", "seeker"), ("p1", "provider"), ("p2", "provider"), ("s3", "seeker")], start=3
        )
    }
    Profile.objects.filter(pk__in=[p.pk for p in people.values()]).update(created_at=now - timedelta(hours=10))

    def introduce(a: str, b: str, *, round_number: int, status: str, hours_ago: float, accepted: bool) -> Match:
        return Match.objects.create(
            project=project, user_a=people[a], user_b=people[b], round=round_number, status=status,
            introduced_at=now - timedelta(hours=hours_ago), first_accepted_at=now if accepted else None,
        )  # fmt: skip

    connected = introduce("s1", "p1", round_number=1, status=Match.Status.CONNECTED, hours_ago=8, accepted=True)
    introduce("s2", "p2", round_number=1, status=Match.Status.REJECTED, hours_ago=6, accepted=True)
    introduce("s1", "p2", round_number=2, status=Match.Status.QUALIFIED, hours_ago=1, accepted=False)
    Match.objects.create(project=project, user_a=people["s3"], round=1, status=Match.Status.UNMATCHED)
    Match.objects.create(project=project, user_a=people["s2"], user_b=people["p1"], round=2,
                         status=Match.Status.DISQUALIFIED)  # fmt: skip
    for side, other, worked in (("s1", "p1", True), ("p1", "s1", None)):
        MatchOutcome.objects.create(
            project=project, match=connected, profile=people[side], other=people[other], ask_at=now, asked_at=now,
            talked=True if worked else None, worked_out=worked, answered_at=now if worked else None,
        )  # fmt: skip
    return people
