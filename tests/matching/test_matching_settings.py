"""Per-project matching settings: the open-introduction limit, pausing, the interval and per-role thresholds."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from matching.consent import match_reject
from matching.matcher import Outcome, matching_iterate
from matching.models import Match, MatchingState, Profile
from matching.qualifier import match_decide
from matching.selectors import matching_projects_due, similarity_threshold
from tenants.services import ProjectConfigError, project_set
from tests.matching.dialogue import active_profile, toward

pytestmark = pytest.mark.django_db


def pairs_of(project, chat_id: int) -> list[Match]:
    return [m for m in Match.objects.filter(project=project).exclude(user_b=None).select_related("user_a__chat",
            "user_b__chat") if chat_id in (m.user_a.chat.telegram_chat_id, m.user_b.chat.telegram_chat_id)]  # fmt: skip


def run_round(project) -> list[Outcome]:
    """Iterate until the current round is done (a round advance after at least one try)."""
    outcomes: list[Outcome] = []
    for _ in range(30):
        iteration = matching_iterate(project=project)
        outcomes.append(iteration.outcome)
        tried = any(outcome in (Outcome.MATCHED, Outcome.UNMATCHED) for outcome in outcomes)
        if not iteration.goes_on or (iteration.outcome == Outcome.ROUND_ADVANCED and tried):
            break
    return outcomes


def counterparts_of(project, chat_id: int) -> set[int]:
    ids = set()
    for match in pairs_of(project, chat_id):
        ids |= {match.user_a.chat.telegram_chat_id, match.user_b.chat.telegram_chat_id}
    return ids - {chat_id}


def test_a_user_at_the_open_introduction_limit_is_skipped_until_one_closes(alpha, beta):
    project_set(project=alpha, key="matching_max_open_introductions", value="2")
    alpha.refresh_from_db()
    # One provider everyone fits, and three seekers; the provider is offered to each until the limit.
    provider = active_profile(alpha, 10, Profile.Role.PROVIDER, toward(0, 1.0, 1), changed_ago=timedelta(hours=5))
    for chat_id, other in ((11, 2), (12, 3), (13, 4)):
        active_profile(alpha, chat_id, Profile.Role.SEEKER, toward(0, 0.95, other))
    run_round(alpha)
    open_ones = Match.objects.filter(project=alpha, status__in=Match.OPEN)
    assert open_ones.filter(user_a=provider).count() + open_ones.filter(user_b=provider).count() == 2
    assert len(pairs_of(alpha, 10)) == 2  # the third seeker was not paired with the provider at the limit

    # The same limit is free for the other tenant's own users: beta keeps the default of 5.
    assert beta.matching_max_open_introductions == 5

    first = pairs_of(alpha, 10)[0]
    match_decide(match=first, qualified=True, reason="fits")
    match_reject(match=first, side="a")  # one introduction closes
    MatchingState.objects.filter(project=alpha).update(next_run_at=None)
    run_round(alpha)
    assert len(pairs_of(alpha, 10)) == 3
    assert counterparts_of(alpha, 10) == {11, 12, 13}  # the skipped seeker got their turn


def test_with_the_default_limit_a_user_gets_several_open_introductions(alpha):
    provider = active_profile(alpha, 20, Profile.Role.PROVIDER, toward(0, 1.0, 1), changed_ago=timedelta(hours=5))
    for chat_id in range(21, 28):
        active_profile(alpha, chat_id, Profile.Role.SEEKER, toward(0, 0.95, chat_id))
    run_round(alpha)
    assert (
        Match.objects.filter(project=alpha, user_b__isnull=False, status__in=Match.OPEN).filter(user_a=provider).count()
        + Match.objects.filter(project=alpha, user_b=provider, status__in=Match.OPEN).count()
        == 5
    )


def test_a_paused_project_makes_no_new_candidates_and_the_other_goes_on(alpha, beta):
    for project in (alpha, beta):
        active_profile(project, 1, Profile.Role.SEEKER, toward(0, 1.0, 1))
        active_profile(project, 2, Profile.Role.PROVIDER, toward(0, 0.9, 2))
    project_set(project=alpha, key="matching_paused", value="yes")
    alpha.refresh_from_db()

    assert matching_iterate(project=alpha).outcome == Outcome.PAUSED
    assert alpha not in matching_projects_due()
    assert beta in matching_projects_due()
    assert matching_iterate(project=beta).outcome == Outcome.MATCHED
    assert not Match.objects.filter(project=alpha).exists()

    project_set(project=alpha, key="matching_paused", value="no")
    alpha.refresh_from_db()
    assert matching_iterate(project=alpha).outcome == Outcome.MATCHED


def test_the_matching_interval_is_the_wait_after_an_empty_round(alpha):
    project_set(project=alpha, key="matching_interval_minutes", value="90")
    alpha.refresh_from_db()
    assert matching_iterate(project=alpha).outcome == Outcome.IDLE  # nobody active
    state = MatchingState.objects.get(project=alpha)
    assert state.next_run_at == pytest.approx(timezone.now() + timedelta(minutes=90), abs=timedelta(seconds=30))


def test_per_role_thresholds(alpha, beta):
    project_set(project=alpha, key="similarity_threshold", value="0.6")
    project_set(project=alpha, key="similarity_threshold_seeker", value="0.8")
    alpha.refresh_from_db()
    assert similarity_threshold(project=alpha, model_id="m", role="seeker") == 0.8
    assert similarity_threshold(project=alpha, model_id="m", role="provider") == 0.6
    assert similarity_threshold(project=alpha, model_id="m", role="both") == 0.6
    assert similarity_threshold(project=beta, model_id="m", role="seeker") == 0.7  # untouched tenant: the default
    # A seeker at 0.7 from the provider: below the seekers' 0.8, so the loop finds nobody for them.
    active_profile(alpha, 1, Profile.Role.SEEKER, toward(0, 1.0, 1), changed_ago=timedelta(hours=3))
    active_profile(alpha, 2, Profile.Role.PROVIDER, toward(0, 0.7, 2))
    assert matching_iterate(project=alpha).outcome == Outcome.UNMATCHED  # the seeker, tried first
    assert matching_iterate(project=alpha).outcome == Outcome.MATCHED  # the provider at 0.6 finds the seeker


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("matching_max_open_introductions", "0", "a whole number from 1 to 100"),
        ("matching_max_open_introductions", "many", "not a whole number"),
        ("matching_paused", "perhaps", "not yes or no"),
        ("similarity_threshold_provider", "1.5", "between -1 and 1"),
        ("matching_interval_minutes", "0", "a whole number from 1 to"),
    ],
)
def test_invalid_matching_settings_are_refused_and_change_nothing(alpha, key, value, error):
    names = ("matching_max_open_introductions", "matching_paused", "similarity_threshold_provider",
             "matching_interval_minutes")  # fmt: skip
    before = {name: getattr(alpha, name) for name in names}
    with pytest.raises(ProjectConfigError, match=error):
        project_set(project=alpha, key=key, value=value)
    alpha.refresh_from_db()
    assert {name: getattr(alpha, name) for name in before} == before


def test_the_project_command_sets_matching_settings(alpha, capsys):
    call_command("project", "set", alpha.slug, "matching_outcome_delay_hours", "24")
    alpha.refresh_from_db()
    assert alpha.matching_outcome_delay_hours == 24
