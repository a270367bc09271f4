"""The soak: steady conversations over three projects for SOAK_SECONDS (default 20 minutes) while the worker is
SIGKILLed, Redis is restarted and PostgreSQL is restarted at random moments; every message must be answered
exactly once. Bounded (it stops sending at the deadline, then drains for at most DRAIN_SECONDS) and reports
messages in, replies out, lost, duplicated and the longest wait.

    bin/test tests/reliability/test_soak.py --run-slow -s                  # 20 minutes
    SOAK_SECONDS=300 SOAK_SEED=7 SOAK_FAULT_EVERY=20-60 bin/test tests/reliability/test_soak.py --run-slow -s
"""

import os
import random
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.test import Client

from bots.generations import generations_recover_expired_leases
from bots.models import Generation, Message
from bots.tasks import generations_process_due_task
from config.backups import postgres_tool
from tests.factories import ProjectFactory
from tests.reliability.conftest import SCOREBOARD, EchoModel, Tally, echoed_messages, tally, wait_until
from tests.telegram_updates import text_update

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "1200"))
SOAK_SEED = int(os.environ.get("SOAK_SEED", "20"))
MESSAGE_EVERY = float(os.environ.get("SOAK_MESSAGE_EVERY", "0.4"))  # seconds between two user messages, overall
# Seconds between two faults, drawn uniformly from this range ("40-110").
FAULT_SPACING = tuple(float(part) for part in os.environ.get("SOAK_FAULT_EVERY", "40-110").split("-", 1))
DRAIN_SECONDS = float(os.environ.get("SOAK_DRAIN_SECONDS", "300"))
CHATS_PER_PROJECT = 4
FAULTS = ("kill the worker", "restart Redis", "restart PostgreSQL")


@dataclass
class Outbox:
    """Telegram's side: each update is delivered until the webhook answers 200 (Telegram retries anything else)."""

    client: Client
    waiting: deque = field(default_factory=deque)
    answers: dict[int, int] = field(default_factory=dict)  # HTTP status -> how many times
    sent_at: dict[str, float] = field(default_factory=dict)

    def queue(self, project, update: dict) -> None:
        self.sent_at[update["message"]["text"]] = time.time()
        self.waiting.append((project, update, 0.0))

    def flush(self) -> None:
        for _ in range(len(self.waiting)):
            project, update, not_before = self.waiting.popleft()
            if time.monotonic() < not_before:
                self.waiting.append((project, update, not_before))
                continue
            status = self._post(project, update)
            self.answers[status] = self.answers.get(status, 0) + 1
            if status != 200:
                self.waiting.append((project, update, time.monotonic() + 1.0))

    def _post(self, project, update: dict) -> int:
        try:
            response = self.client.post(
                f"/telegram/webhook/{project.slug}/", data=update, content_type="application/json",
                HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
            )  # fmt: skip
        except Exception:  # the connection died under the request: Telegram sees a failed delivery
            connection.close()
            return 599
        return response.status_code


def restart_postgres() -> str:
    """A real restart of the embedded server (pg_ctl, as its owner); with DATABASE_URL, every session is cut."""
    host = connection.settings_dict.get("HOST") or connection.settings_dict.get("OPTIONS", {}).get("host", "")
    pgdata = Path(host) if host else None
    if pgdata is not None and (pgdata / "postmaster.pid").exists():
        subprocess.run(
            [postgres_tool("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-m", "fast",
             "-l", str(pgdata / "soak-restart.log"), "restart"],
            user=pgdata.stat().st_uid, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return "pg_ctl restart"
    with connection.cursor() as cursor:  # this thread's own connection, closed below
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connection.close()
    return "every session terminated"


def fault_plan(rng: random.Random, duration: float) -> list[tuple[float, str]]:
    """Random moments, each kind at least once when the soak is long enough, never in the last 20 s."""
    plan, at, kinds = [], 0.0, []
    while True:
        at += rng.uniform(*FAULT_SPACING)
        if at > duration - 20:
            return plan
        if not kinds:
            kinds = rng.sample(FAULTS, len(FAULTS))
        plan.append((at, kinds.pop()))


def tick(beat) -> None:
    """The beat's sweeps at a quick pace; a database or broker that is down is the next tick's business."""
    try:
        beat()
        if generations_recover_expired_leases():
            generations_process_due_task.delay()
    except OperationalError:
        connection.close()
    except Exception:  # Redis down: the sweep runs again in a second
        pass


@pytest.mark.timeout(SOAK_SECONDS + DRAIN_SECONDS + 180)  # the suite's per-test limit is for ordinary tests
def test_soak_with_worker_kills_and_redis_and_postgres_restarts(
    bots, fake_telegram, fake_llm, worker, redis_restarter, beat
):
    alpha, beta = bots
    gamma = ProjectFactory(slug="gamma", name="Gamma Movers")
    fake_telegram.register_bot(gamma.bot_token, "gamma_bot")
    projects = [alpha, beta, gamma]
    for project in projects:
        project.quiet_hours_start = project.quiet_hours_end = None
        project.save()
    EchoModel(fake_llm, delay=0.3)
    chats = [
        (project, 1000 * (index + 1) + n) for index, project in enumerate(projects) for n in range(CHATS_PER_PROJECT)
    ]
    rng = random.Random(SOAK_SEED)
    plan = fault_plan(rng, SOAK_SECONDS)
    outbox = Outbox(Client(raise_request_exception=False))
    events: list[str] = []
    restarts: list[str] = []

    started = time.monotonic()
    next_message, sent = started, 0
    while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
        if time.monotonic() >= next_message:
            project, chat_id = chats[sent % len(chats)]
            outbox.queue(project, text_update(chat_id, f"{project.slug} {chat_id} message {sent}"))
            sent += 1
            next_message += MESSAGE_EVERY
        if plan and elapsed >= plan[0][0]:
            _, kind = plan.pop(0)
            began = time.monotonic()
            if kind == "kill the worker":
                worker.kill()
                worker.start()
                how = "SIGKILL, restarted"
            elif kind == "restart Redis":
                redis_restarter()
                time.sleep(rng.uniform(1.0, 5.0))  # down for a while; webhooks keep coming
                outbox.flush()
                redis_restarter.start()
                how = "stopped, started again"
            else:
                # In the background: webhooks keep arriving while the server is down (and are redelivered).
                threading.Thread(target=lambda: restarts.append(restart_postgres()), daemon=True).start()
                how = "pg_ctl restart in the background"
            events.append(f"{elapsed:6.0f} s  {kind}: {how} ({time.monotonic() - began:.1f} s)")
        outbox.flush()
        tick(beat)
        time.sleep(0.05)

    def everything_answered() -> bool:
        outbox.flush()
        if outbox.waiting:
            return False
        try:
            return all_answered(fake_telegram, chats)
        except OperationalError:
            connection.close()
            return False

    drained = True
    try:
        wait_until(everything_answered, timeout=DRAIN_SECONDS, what="every soak message answered",
                   tick=lambda: tick(beat))  # fmt: skip
    except AssertionError:
        drained = False  # reported below with what is missing, then failed
    time.sleep(3.0)  # late duplicates would arrive now

    result = tally(f"soak {SOAK_SECONDS:.0f} s, 3 projects, {len(events)} faults", fake_telegram, chats,
                   record=False)  # fmt: skip
    longest = longest_wait(fake_telegram, chats, outbox.sent_at)
    SCOREBOARD.append(Tally(result.scenario, result.messages_in, result.replies_out, result.lost, result.duplicated,
                            note=f"longest wait {longest:.1f} s"))  # fmt: skip
    report = [
        f"soak: {SOAK_SECONDS:.0f} s, seed {SOAK_SEED}, {len(chats)} chats in 3 projects",
        f"messages in {result.messages_in}, replies out {result.replies_out}, lost {result.lost}, "
        f"duplicated {result.duplicated}, longest wait {longest:.1f} s",
        f"webhook answers: {dict(sorted(outbox.answers.items()))}",
        "faults:",
        *events,
    ]
    report.insert(3, f"PostgreSQL restarts done: {len(restarts)}")
    if not drained or result.lost:
        report += ["unanswered:", *unanswered(fake_telegram, chats)[:20]]
    print("\n" + "\n".join(report))
    assert len(events) >= min(3, len(fault_plan(random.Random(SOAK_SEED), SOAK_SECONDS)))
    assert result.messages_in == sent
    assert drained, report
    assert (result.lost, result.duplicated) == (0, 0), report


def all_answered(fake_telegram, chats) -> bool:
    answered = 0
    for project, chat_id in chats:
        answered += sum(len(turn) for turn in echoed_messages(fake_telegram, project, chat_id))
    return (
        answered >= Message.objects.filter(needs_reply=True, chat__telegram_chat_id__in=[c for _, c in chats]).count()
    )


def longest_wait(fake_telegram, chats, sent_at: dict[str, float]) -> float:
    """From the first delivery attempt of a message to the first reply that answers it, in seconds."""
    first_answer: dict[str, float] = {}
    tokens = {project.bot_token for project, _ in chats}
    for call in fake_telegram.calls_to("sendMessage"):
        if not call.ok or call.token not in tokens or not call.params.get("text", "").startswith("re: "):
            continue
        for text in call.params["text"][4:].split("\n\n"):
            first_answer.setdefault(text, call.at)
    waits = [first_answer[text] - sent for text, sent in sent_at.items() if text in first_answer]
    return max(waits, default=0.0)


def unanswered(fake_telegram, chats) -> list[str]:
    """Each message no reply named, with the state of its turn and generation: where it got stuck."""
    answered = {text for project, chat_id in chats for turn in echoed_messages(fake_telegram, project, chat_id)
                for text in turn}  # fmt: skip
    lines = []
    for message in (
        Message.objects.filter(needs_reply=True, chat__telegram_chat_id__in=[c for _, c in chats])
        .select_related("turn")
        .order_by("pk")
    ):
        if message.text not in answered:
            turn = message.turn
            generations = list(Generation.objects.filter(chat_id=message.chat_id).order_by("-pk")
                               .values_list("status", "attempts", "error")[:2])  # fmt: skip
            lines.append(f"{message.text!r} created {message.created_at:%H:%M:%S} turn "
                         f"{(turn.status, turn.error[:80]) if turn else None} generations {generations}")  # fmt: skip
    return lines
