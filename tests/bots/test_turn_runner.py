"""The async turn runner: many turns in flight on one worker process, a per-process cap, fair claims."""

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from bots import turn_runner
from bots.event_loop import in_db, run_sync
from bots.generations import generations_claim_fair, register_generation_kind
from bots.models import Chat, Generation
from tests.factories import ProjectFactory
from tests.fakes import llm_api
from tests.infrastructure import BASE_DIR, worker_environment
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)


def send(client: Client, project, chat_id: int, text: str) -> None:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(text_update(chat_id, text)),
        content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200, response.content


def peak_overlap(generations) -> int:
    """The most generations that were running at the same moment (from their started/finished times)."""
    events = sorted(
        [(g.started_at, 1) for g in generations] + [(g.finished_at, -1) for g in generations],
        key=lambda event: (event[0], event[1]),
    )
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def answer_everything(fake_llm, delay: float) -> None:
    fake_llm.openai.responder = lambda request: llm_api.text(f"re: {request.body['messages'][-1]['content']}",
                                                             delay=delay)  # fmt: skip


def wait_for_replies(fake_telegram, projects_chats: dict, worker, timeout: float):
    """Every chat's reply at the fake Telegram, and every generation recorded as finished."""
    total = sum(len(chats) for chats in projects_chats.values())
    try:
        fake_telegram.wait_for("sendMessage", count=total, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{worker.log_tail()}") from None
    deadline = time.monotonic() + 10
    while Generation.objects.filter(status__in=Generation.ACTIVE).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return [c for c in fake_telegram.calls_to("sendMessage") if c.ok]


def test_one_worker_holds_many_turns_in_flight_at_once(client, fake_telegram, fake_llm, project_a, project_b,
                                                        celery_worker):  # fmt: skip
    """30 chats with a 1 s model: their turns overlap on the one worker process (a thread per turn would
    allow 4 at a time). Counted from the generations' own start and finish times, not timed."""
    for project in (project_a, project_b):
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    answer_everything(fake_llm, delay=1.0)
    chats = {project_a: range(100, 115), project_b: range(200, 215)}
    for project, ids in chats.items():
        for chat_id in ids:
            send(client, project, chat_id, f"question {chat_id}")
    calls = wait_for_replies(fake_telegram, chats, celery_worker, timeout=60)

    for project, ids in chats.items():
        mine = [c for c in calls if c.token == project.bot_token]
        assert sorted(c.params["chat_id"] for c in mine) == list(ids)  # each chat answered once, by its bot
        assert all(c.params["text"] == f"re: question {c.params['chat_id']}" for c in mine)
    generations = list(Generation.objects.filter(status=Generation.Status.DONE))
    assert len(generations) == 30
    assert peak_overlap(generations) >= 20, "turns did not overlap: each one held a slot while it waited"


def test_turns_in_flight_stay_under_the_per_process_cap(client, fake_telegram, fake_llm, project_a,
                                                        worker_with_cap):  # fmt: skip
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    answer_everything(fake_llm, delay=0.5)
    chats = {project_a: range(300, 312)}
    for chat_id in chats[project_a]:
        send(client, project_a, chat_id, f"question {chat_id}")
    wait_for_replies(fake_telegram, chats, worker_with_cap, timeout=60)

    generations = list(Generation.objects.filter(status=Generation.Status.DONE))
    assert len(generations) == 12
    assert 2 <= peak_overlap(generations) <= 3  # TURNS_IN_FLIGHT_MAX=3: used, never exceeded


@pytest.fixture
def worker_with_cap(transactional_db, redis_client, redis_url, tmp_path):
    from tests.infrastructure import CeleryWorker, worker_environment

    env = worker_environment(
        redis_url=redis_url, extra={"QDRANT_PATH": str(tmp_path / "qdrant"), "TURNS_IN_FLIGHT_MAX": "3"}
    )
    worker = CeleryWorker(env=env, log_path=tmp_path / "worker.log").start()
    yield worker
    worker.stop()


def _due(project, chat_id: int, *, ago: float) -> Generation:
    chat = Chat.objects.create(project=project, telegram_chat_id=chat_id)
    due = timezone.now() - timedelta(seconds=ago)
    return Generation.objects.create(project=project, chat=chat, kind=Generation.Kind.CHAT_TURN, scheduled_for=due)


def test_claims_take_projects_in_turn_so_a_burst_does_not_push_another_tenant_back(project_a, project_b):
    burst = [_due(project_a, 1000 + n, ago=60 - n) for n in range(20)]  # older than B's single turn
    single = _due(project_b, 2000, ago=1)

    first = generations_claim_fair(limit=2)
    assert [g.project_id for g in first] == [project_a.pk, project_b.pk]
    assert first[0].pk == burst[0].pk
    assert first[1].pk == single.pk
    assert all(g.status == Generation.Status.RUNNING and g.lease_expires_at for g in first)

    # With A's turns already running, a newcomer of a third project comes before A's next ones.
    third = ProjectFactory(slug="gamma")
    newcomer = _due(third, 3000, ago=0)
    second = generations_claim_fair(limit=3)
    assert second[0].pk == newcomer.pk
    assert [g.pk for g in second[1:]] == [burst[1].pk, burst[2].pk]


def test_a_claimed_generation_is_never_claimed_twice(project_a, project_b):
    for n in range(10):
        _due(project_a if n % 2 else project_b, 4000 + n, ago=5)
    claimed = generations_claim_fair(limit=6) + generations_claim_fair(limit=6) + generations_claim_fair(limit=6)
    assert len(claimed) == 10
    assert len({g.pk for g in claimed}) == 10


def test_a_worker_draws_its_database_connections_from_the_pool(redis_url):
    """Checked in a process started as a worker is: the test process itself runs without the pool."""
    probe = (
        "import django; django.setup(); from django.conf import settings; from django.db import connection; "
        "connection.ensure_connection(); "
        "print(connection.pool.max_size, settings.DB_POOL_MAX_SIZE, settings.DATABASES['default']['CONN_MAX_AGE'])"
    )
    env = worker_environment(redis_url=redis_url, extra={}, as_deployed=True)
    env.pop("DB_CONN_MAX_AGE")
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=BASE_DIR, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["12", "12", "0"]


def test_a_killed_workers_turn_is_taken_back_when_its_lease_runs_out_without_the_beat(
    client, fake_telegram, fake_llm, project_a, celery_worker
):
    """The test worker runs no beat: only the runner's own lease recovery can bring the turn back."""
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    answer_everything(fake_llm, delay=60.0)  # the first worker dies while the model thinks
    send(client, project_a, 300, "are you there?")
    deadline = time.monotonic() + 30
    while not Generation.objects.filter(status=Generation.Status.RUNNING).exists():
        assert time.monotonic() < deadline, celery_worker.log_tail()
        time.sleep(0.1)
    celery_worker.kill()
    answer_everything(fake_llm, delay=0.0)
    celery_worker.start()

    fake_telegram.wait_for("sendMessage", count=1, timeout=60)
    [reply] = [c for c in fake_telegram.calls_to("sendMessage") if c.ok]
    assert (reply.params["chat_id"], reply.params["text"]) == (300, "re: are you there?")
    [generation] = Generation.objects.all()
    assert generation.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_claim_still_on_its_way_is_not_taken_back_for_a_lost_workers(project_a, settings, monkeypatch):
    # After a stall of the loop a claim's lease may run out before its generations reach `running`: the
    # runner's own heartbeat must not requeue them (another claim would then run the turn a second time).
    settings.GENERATION_LEASE_SECONDS = 0.4
    seen: list[str] = []

    async def handler(generation: Generation) -> None:
        seen.append(await in_db(lambda: Generation.objects.get(pk=generation.pk).status))

    register_generation_kind("test_slow_claim", handler=handler)
    generation = Generation.objects.create(project=project_a, kind="test_slow_claim", scheduled_for=timezone.now())

    def slow_claim(**kwargs):
        claimed = generations_claim_fair(**kwargs)
        time.sleep(1.2)  # the claim reaches the runner three leases late
        return claimed

    monkeypatch.setattr(turn_runner, "generations_claim_fair", slow_claim)

    async def claim_with_the_heartbeat_running() -> None:
        runner = turn_runner.TurnRunner(cap=10, poll_seconds=0.1, lease_seconds=0.4)
        heartbeat = asyncio.create_task(runner._heartbeat())
        try:
            assert await runner._claim() == 1
            await asyncio.wait(list(runner.running.values()))
        finally:
            heartbeat.cancel()

    run_sync(claim_with_the_heartbeat_running())
    generation.refresh_from_db()
    assert seen == [Generation.Status.RUNNING]
    assert (generation.status, generation.attempts) == (Generation.Status.DONE, 1)


def test_a_runner_whose_loop_lags_claims_only_its_floor_until_the_loop_keeps_up(project_a):
    # A loop running behind means the process's CPU is the limit: more turns would only slow every turn in
    # flight, so the due ones wait in the queue (claimed fairly later) instead of on the loop.
    release = asyncio.Event()

    async def handler(generation: Generation) -> None:
        await release.wait()

    register_generation_kind("test_lagging_loop", handler=handler)
    for _ in range(3):
        Generation.objects.create(project=project_a, kind="test_lagging_loop", scheduled_for=timezone.now())

    async def scenario() -> None:
        runner = turn_runner.TurnRunner(cap=10, poll_seconds=0.1, lease_seconds=30, lag_max=0.1, floor=1)
        runner.loop_lag = 0.5
        assert await runner._claim() == 1  # the floor is taken whatever the lag
        assert await runner._claim() == 0
        watcher = asyncio.create_task(runner._watch_lag())
        try:  # this loop is idle: the lag decays, and the watcher wakes the runner to claim the rest
            await asyncio.wait_for(runner._wake.wait(), 5)
            assert runner.loop_lag <= 0.1
            assert await runner._claim() == 2
        finally:
            watcher.cancel()
            release.set()
            await asyncio.wait(list(runner.running.values()))

    run_sync(scenario())
    assert list(Generation.objects.values_list("status", flat=True)) == [Generation.Status.DONE] * 3
