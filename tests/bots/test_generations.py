"""The generation queue: budget spacing, claiming, leases, weekly cap."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bots.generations import (
    generation_claim_next,
    generation_interval,
    generation_run,
    generation_schedule,
    generations_recover_expired_leases,
    project_over_weekly_cap,
    register_generation_kind,
)
from bots.models import Chat, Generation, LLMCall

pytestmark = pytest.mark.django_db

KIND = Generation.Kind.SUMMARY


def finished(project, *, cost: str, at=None) -> Generation:
    at = at or timezone.now()
    return Generation.objects.create(
        project=project, kind=KIND, status=Generation.Status.DONE, scheduled_for=at, finished_at=at,
        cost_usd=Decimal(cost),
    )  # fmt: skip


def test_interval_formula_matches_the_reference_example():
    interval = generation_interval(last_cost_usd=Decimal("0.01"), weekly_budget_usd=Decimal("6"))
    assert interval == timedelta(seconds=1008)
    assert generation_interval(last_cost_usd=Decimal("0.01"), weekly_budget_usd=None) == timedelta(0)


def test_first_generation_runs_at_once(project_a):
    project_a.weekly_budget_usd = Decimal("6")
    now = timezone.now()
    generation = generation_schedule(project=project_a, kind=KIND, now=now)
    assert generation.scheduled_for == now


def test_next_generation_is_spaced_by_last_cost_over_weekly_budget(project_a):
    project_a.weekly_budget_usd = Decimal("6")
    now = timezone.now()
    finished(project_a, cost="0.01", at=now - timedelta(seconds=5))
    generation = generation_schedule(project=project_a, kind=KIND, now=now)
    assert (generation.scheduled_for - now).total_seconds() == pytest.approx(1008)
    # The next one queues behind it: max(latest scheduled_for, now) + interval.
    second = generation_schedule(project=project_a, kind=KIND, now=now)
    assert (second.scheduled_for - now).total_seconds() == pytest.approx(2016)


def test_no_budget_means_no_spacing_and_budgets_are_per_project(project_a, project_b):
    project_b.weekly_budget_usd = Decimal("6")
    now = timezone.now()
    finished(project_a, cost="5.00", at=now)
    finished(project_b, cost="0.01", at=now)
    assert generation_schedule(project=project_a, kind=KIND, now=now).scheduled_for == now
    spaced = generation_schedule(project=project_b, kind=KIND, now=now)
    assert (spaced.scheduled_for - now).total_seconds() == pytest.approx(1008)


def test_one_active_turn_per_chat(project_a):
    chat = Chat.objects.create(project=project_a, telegram_chat_id=1)
    first = generation_schedule(project=project_a, kind=Generation.Kind.CHAT_TURN, chat=chat)
    again = generation_schedule(project=project_a, kind=Generation.Kind.CHAT_TURN, chat=chat)
    assert again.pk == first.pk
    assert Generation.objects.filter(chat=chat).count() == 1


def test_claim_takes_only_due_rows_and_never_the_same_twice(project_a):
    now = timezone.now()
    due = generation_schedule(project=project_a, kind=KIND, now=now)
    Generation.objects.create(project=project_a, kind=KIND, scheduled_for=now + timedelta(hours=1))
    claimed = generation_claim_next(now=now)
    assert claimed.pk == due.pk
    assert claimed.status == Generation.Status.RUNNING
    assert claimed.attempts == 1
    assert generation_claim_next(now=now) is None


def test_expired_lease_goes_back_to_the_queue_then_fails_after_three_attempts(project_a):
    now = timezone.now()
    generation = Generation.objects.create(
        project=project_a, kind=KIND, status=Generation.Status.RUNNING, scheduled_for=now,
        lease_expires_at=now - timedelta(seconds=1), attempts=1,
    )  # fmt: skip
    assert generations_recover_expired_leases(now=now) == 1
    generation.refresh_from_db()
    assert generation.status == Generation.Status.PENDING
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.RUNNING, attempts=3, lease_expires_at=now - timedelta(seconds=1)
    )
    generations_recover_expired_leases(now=now)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.FAILED


def test_run_records_cost_from_its_llm_calls_and_failures(project_a):
    def handler(generation: Generation) -> None:
        LLMCall.objects.create(project=project_a, generation=generation, purpose="t", provider="openai",
                               model="openai/m", status="ok", tokens_in=100, tokens_out=20,
                               cost_usd=Decimal("0.004"))  # fmt: skip

    def broken(generation: Generation) -> None:
        raise RuntimeError("model exploded")

    register_generation_kind("test_ok", handler=handler)
    register_generation_kind("test_broken", handler=broken)
    ok = Generation.objects.create(project=project_a, kind="test_ok", scheduled_for=timezone.now())
    bad = Generation.objects.create(project=project_a, kind="test_broken", scheduled_for=timezone.now())
    generation_run(generation=ok)
    generation_run(generation=bad)
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert (ok.status, ok.cost_usd, ok.tokens_in, ok.tokens_out) == ("done", Decimal("0.004"), 100, 20)
    assert bad.status == "failed"
    assert "model exploded" in bad.error


def test_weekly_cap_pauses_background_work_until_the_window_allows(project_a):
    project_a.weekly_cap_usd = Decimal("1.00")
    project_a.save()
    LLMCall.objects.create(project=project_a, purpose="t", provider="openai", model="openai/m", status="ok",
                           cost_usd=Decimal("1.00"))  # fmt: skip
    assert project_over_weekly_cap(project=project_a)
    generation = Generation.objects.create(project=project_a, kind=KIND, scheduled_for=timezone.now(), attempts=1)
    generation_run(generation=generation)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.PENDING
    assert generation.scheduled_for > timezone.now() + timedelta(minutes=30)
    LLMCall.objects.update(created_at=timezone.now() - timedelta(days=8))
    assert not project_over_weekly_cap(project=project_a)


def test_an_async_generation_that_never_finishes_is_cancelled_and_queued_again(project_a, settings):
    # The heartbeat keeps a running generation's lease alive, so without a deadline a turn stuck on an await
    # that never ends (a library that swallowed a cancellation) would hold its chat for ever.
    settings.GENERATION_MAX_SECONDS = 0.5
    reached_the_end = []

    async def stuck(generation: Generation) -> None:
        await asyncio.Event().wait()
        reached_the_end.append(generation.pk)

    register_generation_kind("test_stuck", handler=stuck)
    generation = Generation.objects.create(
        project=project_a, kind="test_stuck", status=Generation.Status.RUNNING, scheduled_for=timezone.now(),
        attempts=1, lease_expires_at=timezone.now() + timedelta(seconds=10),
    )  # fmt: skip
    generation_run(generation=generation)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.PENDING
    assert generation.lease_expires_at is None
    assert reached_the_end == []

    generation.status, generation.attempts = Generation.Status.RUNNING, 3  # the last attempt: failed, with why
    generation.save()
    generation_run(generation=generation)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.FAILED
    assert generation.error == "ran longer than 0.5 s"


def test_a_handlers_own_timeout_is_a_failure_not_the_deadline(project_a, settings):
    settings.GENERATION_MAX_SECONDS = 60

    async def times_out(generation: Generation) -> None:
        raise TimeoutError("the provider did not answer")

    register_generation_kind("test_times_out", handler=times_out)
    generation = Generation.objects.create(
        project=project_a, kind="test_times_out", status=Generation.Status.RUNNING, scheduled_for=timezone.now(),
        attempts=1,
    )  # fmt: skip
    generation_run(generation=generation)
    generation.refresh_from_db()
    assert generation.status == Generation.Status.FAILED
    assert "the provider did not answer" in generation.error


def test_lease_recovery_leaves_the_callers_own_generations_alone(project_a):
    now = timezone.now()
    lapsed = dict(project=project_a, kind=KIND, status=Generation.Status.RUNNING, scheduled_for=now, attempts=1,
                  lease_expires_at=now - timedelta(seconds=5))  # fmt: skip
    own, lost = Generation.objects.create(**lapsed), Generation.objects.create(**lapsed)
    assert generations_recover_expired_leases(now=now, exclude_ids=[own.pk]) == 1
    own.refresh_from_db()
    lost.refresh_from_db()
    assert (own.status, lost.status) == (Generation.Status.RUNNING, Generation.Status.PENDING)
