"""New messages reach the worker by LISTEN / NOTIFY: no broker hop, none missed while no worker listened."""

import threading
import time

import pytest
from django.conf import settings
from django.db import connections

from bots import chat_intake
from bots import tasks as bot_tasks
from bots.event_loop import db_pool
from bots.intake import update_accept, update_receive
from bots.models import Generation, Message
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_processed(chat_ids: list[int], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while Message.objects.filter(chat_id__in=chat_ids, processed_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the listener did not process the messages"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def pool_connections_closed():
    """The listener's work ran on the process's database threads: their connections go with the test."""
    yield
    threads = settings.TURN_DB_THREADS
    everyone = threading.Barrier(threads, timeout=10)  # one job per thread: each waits for all the others

    def close() -> None:
        connections.close_all()
        everyone.wait()

    for job in [db_pool().submit(close) for _ in range(threads)]:
        job.result(timeout=15)


@pytest.fixture
def kicks(monkeypatch) -> list[int]:
    kicked: list[int] = []
    monkeypatch.setattr("bots.tasks.generations_kick_now", lambda: kicked.append(1))
    return kicked


def test_a_stored_message_is_processed_through_the_listener_and_a_turn_queued(project_a, kicks, monkeypatch):
    published: list[tuple] = []
    monkeypatch.setattr(bot_tasks.chat_process_task, "apply_async", lambda *a, **kw: published.append(a))
    chat_intake.chat_intake_listen()
    try:
        deadline = time.monotonic() + 10
        stored = update_accept(project=project_a, payload=text_update(41, "How much is a deep clean?"))
        while not kicks and time.monotonic() < deadline:  # the first notification may precede the LISTEN:
            time.sleep(0.05)  # the catch-up after it processes that message instead
        wait_until_processed([stored.chat_id])
        later = update_accept(project=project_a, payload=text_update(42, "And windows?"))
        wait_until_processed([later.chat_id])
    finally:
        chat_intake.chat_intake_stop()
    turns = Generation.objects.filter(kind=Generation.Kind.CHAT_TURN, status=Generation.Status.PENDING)
    assert sorted(turns.values_list("chat_id", flat=True)) == sorted([stored.chat_id, later.chat_id])
    assert len(kicks) >= 2  # each due turn woke a runner
    assert published == []  # no Celery chat task: the broker is not on a message's way


def test_messages_stored_while_no_worker_listened_are_processed_when_one_starts(project_a, project_b, kicks):
    waiting = [
        update_receive(project=project_a, payload=text_update(51, "anyone there?")).chat_id,
        update_receive(project=project_b, payload=text_update(52, "есть кто?")).chat_id,
    ]
    chat_intake.chat_intake_listen()
    try:
        wait_until_processed(waiting)
    finally:
        chat_intake.chat_intake_stop()
    assert Generation.objects.filter(chat_id__in=waiting, kind=Generation.Kind.CHAT_TURN).count() == 2


def test_a_malformed_notification_is_ignored_and_logged(caplog):
    listener = chat_intake.ChatIntakeListener()
    listener._received("not:a:chat")
    assert not listener._queued
    assert "malformed notification" in caplog.text
