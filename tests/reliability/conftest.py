"""Fault and load scenarios: a real worker with short timeouts, an echoing fake LLM, and a tally of what crossed
the wire (messages in, replies out, lost, duplicated) that is printed as a table at the end of the run."""

import contextlib
import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from django.test import Client

from bots import tasks as bot_tasks
from bots.models import Message, Turn
from config.local_redis import redis_answers, start_redis_server
from tenants.models import Project
from tests.fakes import llm_api
from tests.infrastructure import WORKER_LEASE_SECONDS, CeleryWorker, worker_environment
from tests.reliability.scoreboard import SCOREBOARD, Tally, scoreboard_rows_attach, scoreboard_write

_restarted_redis: list[subprocess.Popen[bytes]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    scoreboard_write(terminalreporter, SCOREBOARD)


_ROWS_BEFORE = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    item.stash[_ROWS_BEFORE] = len(SCOREBOARD)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The rows the test's call added go with its report (to the controlling process of a parallel run)."""
    report = yield
    if call.when == "call" and getattr(item.config, "workerinput", None) is not None:
        scoreboard_rows_attach(report, SCOREBOARD[item.stash.get(_ROWS_BEFORE, len(SCOREBOARD)) :])
    return report


@pytest.fixture(scope="session", autouse=True)
def _stop_restarted_redis() -> Iterator[None]:
    yield
    for process in _restarted_redis:
        process.terminate()
        process.wait(10)


# --- the worker and the fakes -------------------------------------------------------------------------------


@pytest.fixture
def worker_factory(transactional_db, redis_client, redis_url, tmp_path: Path) -> Iterator[Callable[..., CeleryWorker]]:
    """Real Celery workers with short leases and Telegram timeouts, so that faults resolve in seconds."""
    started: list[CeleryWorker] = []

    def start(concurrency: int = 4, **extra: str) -> CeleryWorker:
        env = worker_environment(
            redis_url=redis_url,
            extra={
                "QDRANT_PATH": str(tmp_path / "qdrant"), "GENERATION_LEASE_SECONDS": WORKER_LEASE_SECONDS,
                "TELEGRAM_REQUEST_TIMEOUT_SECONDS": "2", **extra,
            },
        )  # fmt: skip
        worker = CeleryWorker(env=env, log_path=tmp_path / f"worker{len(started)}.log", concurrency=concurrency)
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.kill()  # the test is over: no graceful shutdown to wait for


@pytest.fixture
def worker(worker_factory) -> CeleryWorker:
    return worker_factory()


@pytest.fixture
def bots(fake_telegram, project_a, project_b) -> tuple[Project, Project]:
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    return project_a, project_b


class EchoModel:
    """The fake LLM answers every turn with `re: <the user's turn>`: each reply names what it answers."""

    def __init__(self, fake_llm: llm_api.FakeLLM, delay: float = 0.0) -> None:
        self.delay = delay
        fake_llm.openai.responder = self.respond

    def respond(self, request: llm_api.LLMRequest) -> llm_api.Reply:
        content = request.body["messages"][-1].get("content")
        return llm_api.text(f"re: {content}", delay=self.delay)


@pytest.fixture
def echo_model(fake_llm) -> EchoModel:
    return EchoModel(fake_llm)


@pytest.fixture
def redis_restarter(redis_url: str, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Stop the tests' redis-server (nothing is persisted: queued tasks are gone) and start it on the same port."""

    def stop() -> None:
        client = redis.Redis.from_url(redis_url)
        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it goes
            client.shutdown(nosave=True)
        deadline = time.monotonic() + 10
        while redis_answers(redis_url) and time.monotonic() < deadline:
            time.sleep(0.05)

    def start() -> None:
        port = urlparse(redis_url).port
        _restarted_redis.append(start_redis_server(port=port, workdir=tmp_path / "redis-restarted"))

    stop.start = start  # type: ignore[attr-defined]
    yield stop
    if not redis_answers(redis_url):  # the test failed while Redis was down: the session's later tests need it
        start()


# --- talking to the platform -----------------------------------------------------------------------------------


def send(client: Client, project: Project, update: dict) -> int:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(update), content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    return response.status_code


def wait_until(predicate: Callable[[], bool], *, timeout: float = 60.0, what: str, worker=None, tick=None) -> None:
    """Poll `predicate`; `tick` runs between polls (the beat's sweep, in scenarios that need one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if tick is not None:
            tick()
        time.sleep(0.25)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


class Beat:
    """The beat's engine sweep, run from the test at a quick pace and without the 30 s staleness wait."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, every: float = 1.0) -> None:
        monkeypatch.setattr(bot_tasks, "STALE_AFTER", bot_tasks.timedelta(seconds=0))
        self.every = every
        self._last = 0.0

    def __call__(self) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        with contextlib.suppress(Exception):  # Redis may be down in the scenario; the next tick tries again
            bot_tasks.engine_sweep()


@pytest.fixture
def beat(monkeypatch) -> Beat:
    return Beat(monkeypatch)


# --- counting what crossed the wire ----------------------------------------------------------------------------

_ECHO = re.compile(r"^re: (?P<turn>.*)$", re.DOTALL)


def delivered_texts(fake_telegram, project: Project, chat_id: int) -> list[str]:
    return [
        call.params["text"]
        for call in fake_telegram.calls_to("sendMessage", token=project.bot_token)
        if call.ok and call.params.get("chat_id") == chat_id
    ]


def echoed_messages(fake_telegram, project: Project, chat_id: int) -> list[list[str]]:
    """Per delivered echo reply, the user messages it answered (a coalesced burst answers several)."""
    answered = []
    for text in delivered_texts(fake_telegram, project, chat_id):
        if match := _ECHO.match(text):
            answered.append(match["turn"].split("\n\n"))
    return answered


def tally(
    scenario: str, fake_telegram, chats: list[tuple[Project, int]], *, note: str = "", record: bool = True
) -> Tally:
    """Messages the users sent that needed a reply; replies delivered; messages never answered on the wire
    (lost); messages answered more than once (duplicated). Replies are echoes, so each names its messages."""
    messages_in = replies_out = lost = duplicated = 0
    for project, chat_id in chats:
        sent = list(
            Message.objects.filter(project=project, chat__telegram_chat_id=chat_id, needs_reply=True)
            .select_related("turn")
            .order_by("pk")
        )
        texts = delivered_texts(fake_telegram, project, chat_id)
        replies_out += len(texts)
        answered = Counter(text for message_texts in echoed_messages(fake_telegram, project, chat_id)
                           for text in message_texts)  # fmt: skip
        apologies = Counter(
            t.turn_id for t in sent if t.turn is not None and t.turn.status == Turn.Status.SENT and t.turn.error
        )
        for message in sent:
            messages_in += 1
            times = answered.get(message.text, 0) or (1 if message.turn_id in apologies else 0)
            lost += times == 0
            duplicated += max(0, times - 1)
    result = Tally(scenario, messages_in, replies_out, lost, duplicated, note)
    if record:
        SCOREBOARD.append(result)
    return result


def post_concurrently(client_factory: Callable[[], Client], jobs: list[Callable[[Client], object]]) -> list[object]:
    """Run webhook posts from several threads at once (each thread its own client and DB connection)."""
    from django.db import connection

    results: list[object] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(index: int) -> None:
        client = client_factory()
        barrier.wait()
        try:
            results[index] = jobs[index](client)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def assert_timers_consistent(chats: list[tuple[Project, int]]) -> None:
    """Every chat's follow-up sequence restarted from its first step after the chat's last message, once."""
    from leads.models import FollowUp

    for project, chat_id in chats:
        last = Message.objects.filter(project=project, chat__telegram_chat_id=chat_id).latest("pk")
        timer = FollowUp.objects.get(project=project, chat__telegram_chat_id=chat_id)
        assert timer.step == 0
        assert timer.fire_at is not None
        assert timer.fire_at >= last.created_at + timedelta(seconds=project.followup_steps[0]) - timedelta(seconds=1)
