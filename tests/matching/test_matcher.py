"""The matching loop: round-robin fairness, roles, threshold, blocking and re-pairing rules."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bots.llm.embeddings import OFFLINE_DIM
from bots.models import Generation
from matching import selectors, tasks
from matching.matcher import IDLE_WAIT, Outcome, matching_iterate, matching_run
from matching.models import Match, MatchingState, Profile
from matching.profiles import profile_activate, profile_save
from matching.selectors import profile_best_counterpart
from tests.factories import ProjectFactory
from tests.matching.dialogue import active_profile, axis, toward

pytestmark = pytest.mark.django_db

SEEKER, PROVIDER, BOTH = Profile.Role.SEEKER, Profile.Role.PROVIDER, Profile.Role.BOTH


def tried_in_round(project, round_number: int) -> list[int]:
    """The chat ids tried as user_a in a round, in the order they were tried."""
    rows = Match.objects.filter(project=project, round=round_number).order_by("pk")
    return list(rows.values_list("user_a__chat__telegram_chat_id", flat=True))


def pairs(project) -> set[tuple[int, int]]:
    rows = Match.objects.filter(project=project, user_b__isnull=False).exclude(status=Match.Status.UNMATCHED)
    return {(m.user_a.chat.telegram_chat_id, m.user_b.chat.telegram_chat_id) for m in rows}


def test_a_seeker_is_paired_with_the_most_similar_provider_and_a_qualification_is_queued(alpha):
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(alpha, 2, SEEKER, toward(0, 0.99, 2))  # closest of all, but a seeker too
    best = active_profile(alpha, 3, PROVIDER, toward(0, 0.9, 3))
    active_profile(alpha, 4, PROVIDER, toward(0, 0.8, 4))

    iteration = matching_iterate(project=alpha)

    assert iteration.outcome == Outcome.MATCHED
    match = iteration.match
    assert (match.user_a, match.user_b, match.status, match.round) == (seeker, best, Match.Status.PENDING, 1)
    assert match.similarity == pytest.approx(0.9, abs=1e-4)
    generation = Generation.objects.get(kind=Generation.Kind.QUALIFICATION)
    assert (generation.project, generation.target_id, generation.status) == (alpha, match.pk, "pending")


def test_each_round_tries_every_active_user_before_any_retry(alpha):
    # Nobody fits anybody: every try is unmatched, so the order of tries is the round-robin itself.
    for chat_id, role in [(11, SEEKER), (12, PROVIDER), (13, SEEKER), (14, BOTH)]:
        active_profile(alpha, chat_id, role, axis(chat_id).tolist())

    run = matching_run(project=alpha)

    assert [i.outcome for i in run.iterations] == [Outcome.UNMATCHED] * 4 + [Outcome.ROUND_ADVANCED]
    assert tried_in_round(alpha, 1) == [11, 12, 13, 14]  # oldest profile change first, each once
    state = MatchingState.objects.get(project=alpha)
    assert state.current_round == 2
    # A round of nothing but unmatched tries would repeat itself: the loop waits for an event instead.
    assert state.next_run_at > timezone.now() + IDLE_WAIT - timedelta(minutes=1)
    assert matching_iterate(project=alpha).outcome == Outcome.WAITING

    MatchingState.objects.filter(project=alpha).update(next_run_at=timezone.now())
    matching_run(project=alpha)
    assert tried_in_round(alpha, 2) == [11, 12, 13, 14]


def test_a_user_who_joins_mid_round_is_tried_in_that_round(alpha):
    active_profile(alpha, 11, SEEKER, axis(11).tolist())
    active_profile(alpha, 12, SEEKER, axis(12).tolist())
    matching_iterate(project=alpha)
    newcomer = active_profile(alpha, 13, SEEKER, axis(13).tolist(), changed_ago=timedelta(0))

    matching_run(project=alpha)

    assert tried_in_round(alpha, 1) == [11, 12, 13]
    assert newcomer.matches_as_a.get().round == 1


def one_open_introduction(project) -> None:
    """The reference's strictest setting: a user in an open match is neither picked nor offered."""
    project.matching_max_open_introductions = 1
    project.save()


def test_a_round_with_pairs_goes_on_into_the_next_round_at_once(alpha):
    one_open_introduction(alpha)
    active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(alpha, 2, PROVIDER, toward(0, 0.9, 2))
    active_profile(alpha, 3, SEEKER, axis(3).tolist())  # fits nobody

    run = matching_run(project=alpha)

    outcomes = [i.outcome for i in run.iterations]
    assert outcomes == [Outcome.MATCHED, Outcome.UNMATCHED, Outcome.ROUND_ADVANCED, Outcome.UNMATCHED,
                        Outcome.ROUND_ADVANCED]  # fmt: skip
    assert tried_in_round(alpha, 1) == [1, 3]
    assert tried_in_round(alpha, 2) == [3]  # 1 and 2 wait for their qualification
    assert MatchingState.objects.get(project=alpha).current_round == 3


def test_both_is_offered_to_seekers_and_providers_and_matches_both(alpha):
    active_profile(alpha, 1, BOTH, toward(0, 1.0, 1))
    active_profile(alpha, 2, BOTH, toward(0, 0.9, 2))
    active_profile(alpha, 3, SEEKER, toward(5, 1.0, 6))
    active_profile(alpha, 4, BOTH, toward(5, 0.9, 7))

    matching_run(project=alpha)

    assert pairs(alpha) == {(1, 2), (3, 4)}


def test_a_counterpart_below_the_threshold_is_not_offered_unless_the_project_lowers_it(alpha):
    active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(alpha, 2, PROVIDER, toward(0, 0.5, 2))  # the offline model's default threshold is 0.55

    assert matching_iterate(project=alpha).outcome == Outcome.UNMATCHED

    alpha.similarity_threshold = 0.45
    alpha.save()
    MatchingState.objects.filter(project=alpha).update(current_round=2)
    iteration = matching_iterate(project=alpha)
    assert iteration.outcome == Outcome.MATCHED
    assert iteration.match.similarity == pytest.approx(0.5, abs=1e-4)


def test_vectors_of_another_embedding_model_are_never_compared(alpha):
    active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(alpha, 2, PROVIDER, toward(0, 1.0, 1), model="openai/text-embedding-3-small")

    run = matching_run(project=alpha)

    assert tried_in_round(alpha, 1) == [1]  # the other model's profile is neither picked nor offered
    assert run.iterations[0].outcome == Outcome.UNMATCHED


def test_profiles_of_another_tenant_are_never_candidates(alpha, beta):
    active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(beta, 2, PROVIDER, toward(0, 1.0, 1))

    matching_run(project=alpha)
    matching_run(project=beta)

    assert not pairs(alpha)
    assert not pairs(beta)
    assert tried_in_round(alpha, 1) == [1]
    assert tried_in_round(beta, 1) == [2]


@pytest.mark.parametrize("status", ["pending", "qualified", "a_accepted", "b_accepted"])
def test_an_open_match_blocks_both_of_its_users_at_a_limit_of_one(alpha, status):
    one_open_introduction(alpha)
    user_a = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    user_b = active_profile(alpha, 2, PROVIDER, toward(0, 0.95, 2))
    Match.objects.create(project=alpha, user_a=user_a, user_b=user_b, round=0, status=status, similarity=0.95)
    active_profile(alpha, 3, SEEKER, toward(0, 0.9, 3))  # would fit user_b
    active_profile(alpha, 4, PROVIDER, toward(0, 0.85, 4))  # would fit user_a

    matching_run(project=alpha)

    # Neither blocked user is picked, nor offered: 3 and 4 meet each other instead.
    assert pairs(alpha) == {(1, 2), (3, 4)}
    assert tried_in_round(alpha, 1) == [3]


@pytest.mark.parametrize("status", ["rejected", "connected"])
def test_a_closed_pair_is_never_offered_again_but_its_users_are_free(alpha, status):
    one_open_introduction(alpha)
    user_a = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    user_b = active_profile(alpha, 2, PROVIDER, toward(0, 0.95, 2))
    Match.objects.create(project=alpha, user_a=user_a, user_b=user_b, round=0, status=status, similarity=0.95)
    active_profile(alpha, 3, PROVIDER, toward(0, 0.8, 3))

    matching_run(project=alpha)

    assert (1, 3) in pairs(alpha)
    assert tried_in_round(alpha, 1) == [1, 2]  # 2 tried too: its only counterpart is the closed pair


def test_a_disqualified_pair_is_eligible_again_only_after_one_profile_changes(alpha):
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    provider = active_profile(alpha, 2, PROVIDER, toward(0, 0.95, 2))
    Match.objects.create(
        project=alpha, user_a=seeker, user_b=provider, round=0, status=Match.Status.DISQUALIFIED, similarity=0.95
    )

    matching_run(project=alpha)
    assert tried_in_round(alpha, 1) == [1, 2]
    assert Match.objects.filter(status=Match.Status.PENDING).count() == 0

    # The provider changes their location in conversation and confirms with the button.
    saved = profile_save(project=alpha, chat=provider.chat, changes={"location": "Berlin"}, complete=True)
    assert saved.profile.state == Profile.State.UPDATED
    assert profile_activate(project=alpha, chat=provider.chat) == "activated"  # also wakes the loop

    iteration = matching_iterate(project=alpha)
    assert iteration.outcome == Outcome.MATCHED
    assert (iteration.match.user_a, iteration.match.user_b) == (seeker, provider)
    assert iteration.match.round == 2


def test_a_private_note_alone_does_not_reopen_a_disqualified_pair(alpha):
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    provider = active_profile(alpha, 2, PROVIDER, toward(0, 0.95, 2))
    Match.objects.create(
        project=alpha, user_a=seeker, user_b=provider, round=0, status=Match.Status.DISQUALIFIED, similarity=0.95
    )
    saved = profile_save(
        project=alpha, chat=provider.chat, changes={"private_observations": "seems impatient"}, complete=True
    )
    assert saved.profile.state == Profile.State.ACTIVE

    matching_run(project=alpha)
    assert not Match.objects.filter(status=Match.Status.PENDING).exists()


def test_with_nobody_active_the_loop_waits_and_an_activation_wakes_it(
    alpha, monkeypatch, django_capture_on_commit_callbacks
):
    woken: list[int] = []
    monkeypatch.setattr(tasks.matching_run_task, "delay", woken.append)
    ready = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    Profile.objects.filter(pk=ready.pk).update(state=Profile.State.READY)

    assert matching_iterate(project=alpha).outcome == Outcome.IDLE
    state = MatchingState.objects.get(project=alpha)
    assert state.next_run_at == pytest.approx(timezone.now() + IDLE_WAIT, abs=timedelta(seconds=30))
    assert matching_iterate(project=alpha).outcome == Outcome.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        profile_activate(project=alpha, chat=ready.chat)

    assert woken == [alpha.pk]  # the loop's task is enqueued at once, not after the wait
    assert matching_iterate(project=alpha).outcome == Outcome.UNMATCHED


def test_tick_starts_the_loop_of_due_matching_projects_only(alpha, beta, monkeypatch):
    started: list[int] = []
    monkeypatch.setattr(tasks.matching_run_task, "delay", started.append)
    ProjectFactory(kind="sales")
    MatchingState.objects.create(project=beta, next_run_at=timezone.now() + timedelta(minutes=5))

    tasks.matching_tick()

    assert started == [alpha.pk]


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_leaves_while_the_loop_of_the_project_is_held(alpha):
    active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    MatchingState.objects.create(project=alpha)
    holding, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                MatchingState.objects.select_for_update().get(project=alpha)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert holding.wait(10)
    try:
        assert matching_iterate(project=alpha).outcome == Outcome.BUSY
        assert not Match.objects.exists()
    finally:
        release.set()
        thread.join(10)
    assert matching_iterate(project=alpha).outcome == Outcome.UNMATCHED


def _candidate_query_plan(profile: Profile) -> str:
    """The plan PostgreSQL picks for the candidate query that matching ran, when it may use any index."""
    with CaptureQueriesContext(connection) as queries:
        profile_best_counterpart(profile=profile, threshold=0.55)
    [sql] = [q["sql"] for q in queries.captured_queries if "<=>" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: let the index look cheapest
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_small_project_compares_with_every_profile_and_a_large_one_walks_the_index(alpha, monkeypatch):
    # HNSW is approximate: an index of many updated or deleted entries can leave a live profile unreachable.
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1))
    active_profile(alpha, 2, PROVIDER, toward(0, 0.9, 2))

    assert "profile_embedding_hnsw" not in _candidate_query_plan(seeker)
    assert profile_best_counterpart(profile=seeker, threshold=0.55).profile.chat.telegram_chat_id == 2

    monkeypatch.setattr(selectors, "EXACT_SEARCH_MAX_PROFILES", 1)
    assert f"profile_embedding_hnsw_{OFFLINE_DIM}" in _candidate_query_plan(seeker)  # the default model's size
    assert profile_best_counterpart(profile=seeker, threshold=0.55).profile.chat.telegram_chat_id == 2
