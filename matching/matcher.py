"""The matching loop: fair round-robin over active users, one candidate pair per iteration.

Each iteration, under a lock on the project's MatchingState row (so two workers never run one project's
loop at once): pick the next matchable user not yet tried in the current round (oldest profile change
first; a user at the project's limit of open introductions is skipped until one closes); look for the most
similar counterpart of the opposite role above the threshold (per role); create a pending
match and its qualification generation, or record an unmatched try (a Match row without user_b, so the
user counts as tried); when everyone matchable was tried, advance the round. With nobody to try, the
loop waits (the project's matching interval) until an event wakes it: a user becoming active, or a match closing.

A round in which every try came back unmatched would come back the same until something changes, so
after advancing past such a round the loop waits for the next event too instead of spinning.
"""

import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from bots.generations import generation_schedule
from bots.llm.embeddings import embedding_dim, embedding_model_id
from bots.models import Generation
from matching.models import Match, MatchingState
from matching.selectors import (
    profile_best_counterpart,
    profile_next_to_try,
    profiles_matchable,
    similarity_threshold,
)
from tenants.models import Project

logger = logging.getLogger(__name__)

IDLE_WAIT = timedelta(minutes=30)  # the default of the project's matching_interval_minutes


def idle_wait(project: Project) -> timedelta:
    return timedelta(minutes=project.matching_interval_minutes) if project.matching_interval_minutes else IDLE_WAIT


class Outcome(enum.StrEnum):
    MATCHED = "matched"  # a pending match and its qualification were created
    UNMATCHED = "unmatched"  # the user was tried and nobody fitted
    ROUND_ADVANCED = "round_advanced"  # everyone was tried: the next round starts
    IDLE = "idle"  # nobody to try: waiting for an event or IDLE_WAIT
    WAITING = "waiting"  # the loop is waiting (next_run_at in the future)
    PAUSED = "paused"  # an operator paused matching for the project
    BUSY = "busy"  # another worker holds this project's loop


@dataclass(frozen=True)
class Iteration:
    outcome: Outcome
    round_number: int
    match: Match | None = None

    @property
    def goes_on(self) -> bool:
        return self.outcome in (Outcome.MATCHED, Outcome.UNMATCHED, Outcome.ROUND_ADVANCED)


@dataclass(frozen=True)
class Run:
    iterations: list[Iteration]
    more_work: bool  # stopped by its time budget, not because the loop has to wait


def _state_ensure(project: Project) -> None:
    MatchingState.objects.get_or_create(project=project)


def matching_wake(*, project: Project) -> None:
    """Something changed that may make new pairs possible: run the loop now, not after its wait."""
    from matching.tasks import matching_run_task  # the task module imports the services

    _state_ensure(project)
    MatchingState.objects.filter(project=project).update(next_run_at=timezone.now())
    transaction.on_commit(lambda: matching_run_task.delay(project.pk))


def _generations_kick() -> None:
    from bots.tasks import generations_kick

    generations_kick()


def matching_iterate(*, project: Project, now: datetime | None = None) -> Iteration:
    """One step of the loop (see the module docstring); short, in one transaction."""
    now = now or timezone.now()
    _state_ensure(project)
    with transaction.atomic():
        state = MatchingState.objects.select_for_update(skip_locked=True).filter(project=project).first()
        if state is None:
            return Iteration(Outcome.BUSY, 0)
        round_number = state.current_round
        if state.next_run_at is not None and state.next_run_at > now:
            return Iteration(Outcome.WAITING, round_number)
        if project.matching_paused:
            return Iteration(Outcome.PAUSED, round_number)
        model_id, dim = embedding_model_id(), embedding_dim()  # only profiles of the configured model take part
        user_a = profile_next_to_try(project=project, round_number=round_number, model_id=model_id, dim=dim)
        if user_a is None:
            iteration = _round_end(state, model_id=model_id, dim=dim, now=now)
        else:
            threshold = similarity_threshold(project=project, model_id=model_id, role=user_a.role)
            candidate = profile_best_counterpart(profile=user_a, threshold=threshold)
            if candidate is None:
                match = Match.objects.create(
                    project=project, user_a=user_a, round=round_number, status=Match.Status.UNMATCHED
                )
                iteration = Iteration(Outcome.UNMATCHED, round_number, match)
            else:
                match = Match.objects.create(
                    project=project, user_a=user_a, user_b=candidate.profile, round=round_number,
                    similarity=candidate.similarity, status=Match.Status.PENDING,
                )  # fmt: skip
                generation_schedule(project=project, kind=Generation.Kind.QUALIFICATION, target_id=match.pk)
                _generations_kick()
                iteration = Iteration(Outcome.MATCHED, round_number, match)
        state.last_run_at, state.last_outcome = now, iteration.outcome
        state.save(update_fields=["current_round", "next_run_at", "last_run_at", "last_outcome", "updated_at"])
    logger.info(
        "matching iteration: %s",
        iteration.outcome,
        extra={"project_id": project.pk, "round": round_number, "match_id": getattr(iteration.match, "pk", None)},
    )
    return iteration


def _round_end(state: MatchingState, *, model_id: str, dim: int, now: datetime) -> Iteration:
    """Nobody left to try in this round: wait when nobody is matchable, else start the next round."""
    project, round_number = state.project, state.current_round
    if not profiles_matchable(project=project, model_id=model_id, dim=dim).exists():
        state.next_run_at = now + idle_wait(project)
        return Iteration(Outcome.IDLE, round_number)
    found_any = Match.objects.filter(project=project, round=round_number, user_b__isnull=False).exists()
    state.current_round = round_number + 1
    # A round of nothing but unmatched tries would repeat itself: wait for an event (or IDLE_WAIT).
    state.next_run_at = None if found_any else now + idle_wait(project)
    return Iteration(Outcome.ROUND_ADVANCED, state.current_round)


def matching_run(*, project: Project, max_seconds: float = 50.0, max_iterations: int = 10_000) -> Run:
    """Run iterations while there is work, for a bounded time (the task re-enqueues itself when cut)."""
    deadline = time.monotonic() + max_seconds
    iterations: list[Iteration] = []
    while len(iterations) < max_iterations:
        if time.monotonic() >= deadline:
            return Run(iterations, more_work=True)
        iteration = matching_iterate(project=project)
        iterations.append(iteration)
        waiting_after_round = iteration.outcome == Outcome.ROUND_ADVANCED and _waiting(project)
        if not iteration.goes_on or waiting_after_round:
            return Run(iterations, more_work=False)
    return Run(iterations, more_work=True)


def _waiting(project: Project) -> bool:
    return MatchingState.objects.filter(project=project, next_run_at__gt=timezone.now()).exists()
