"""Concurrent senders in many chats of one project: every message answered once, and no deadlock in PostgreSQL.

The per-message path locks only the rows that change (a chat row, its messages, a generation) and takes
the budget scheduler's advisory lock; it never locks the project's row. A `select_for_update()` over a join
locks every joined table, and the turns of one project then queued on its row and deadlocked
("while locking tuple ... in relation tenants_project"). PostgreSQL counts each deadlock it breaks in
`pg_stat_database.deadlocks` and logs `deadlock detected`: both are read before and after the run.
"""

import fcntl
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test import Client

from bots.models import Chat, Generation, Turn
from tests.factories import ProjectFactory
from tests.reliability.conftest import EchoModel, echoed_messages, post_concurrently, send, tally, wait_until
from tests.telegram_updates import text_update

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("one_deadlock_test_at_a_time")]


@pytest.fixture
def one_deadlock_test_at_a_time() -> Iterator[None]:
    """The server's log is shared by every parallel session's database: while one of these tests runs, no
    other session runs the other (the deliberate deadlock of the first would count against the second)."""
    with (Path(tempfile.gettempdir()) / "switchboard-tests-deadlocks.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


CHATS = 8
SENDERS_PER_CHAT = 3
MESSAGES_PER_SENDER = 8  # with the project row locked, 3 gave no deadlock here and 8 gave 9 of them


class Deadlocks:
    """PostgreSQL's count of deadlocks in the test database, and the `deadlock detected` lines of its log."""

    def __init__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version_num')::int, current_setting('data_directory')")
            self.server_version, data_directory = cursor.fetchone()
        log = Path(data_directory) / "log"  # where the embedded server (pgserver's pg_ctl -l) writes its log
        self.log = log if log.is_file() else None

    def counted(self) -> int:
        """The counter, once the other sessions' statistics are in.

        A backend flushes its pending statistics when it ends and, when it goes idle, at most once a second
        or at the latest 10 s later (PGSTAT_IDLE_INTERVAL): wait until every other session of the test
        database has ended or been idle that long, then read past this session's own snapshot.
        """
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self._busy_sessions():
            time.sleep(0.25)
        time.sleep(1.0)  # a leaving backend drops out of pg_stat_activity just before it flushes its counters
        with connection.cursor() as cursor:
            if self.server_version >= 150000:
                cursor.execute("SELECT pg_stat_force_next_flush()")  # this session's own, if it has any
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            return int(cursor.fetchone()[0])

    def logged(self) -> int | None:
        """`deadlock detected` lines in the server's log (None on a server whose log this process cannot read)."""
        if self.log is None:
            return None
        return self.log.read_bytes().count(b"deadlock detected")

    def _busy_sessions(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND NOT (state = 'idle' AND state_change < clock_timestamp() - interval '11 seconds')"
            )
            return cursor.fetchone()[0]


def test_the_measure_sees_a_deadlock():
    """The control: two sessions that lock two rows in opposite orders make the counter (and the log) rise."""
    project = ProjectFactory()
    rows = [Chat.objects.create(project=project, telegram_chat_id=n) for n in (1, 2)]
    measure = Deadlocks()
    before_count, before_log = measure.counted(), measure.logged()
    both_hold_one = threading.Barrier(2)
    outcomes: list[str] = []

    def lock_in_order(order: list[Chat]) -> None:
        try:
            with transaction.atomic():
                Chat.objects.select_for_update().get(pk=order[0].pk)
                both_hold_one.wait(10)
                Chat.objects.select_for_update().get(pk=order[1].pk)
            outcomes.append("committed")
        except OperationalError as exc:
            outcomes.append("deadlock" if "deadlock detected" in str(exc) else str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=lock_in_order, args=(order,)) for order in (rows, rows[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["committed", "deadlock"]
    assert measure.counted() == before_count + 1
    if before_log is not None:
        deadline = time.monotonic() + 10  # the server writes its log a moment later
        while measure.logged() < before_log + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert measure.logged() == before_log + 1


@pytest.mark.timeout(900)
def test_eight_chats_of_one_project_with_three_concurrent_senders_each_deadlock_nothing(
    fake_telegram, fake_llm, worker_factory
):
    # A budget large enough never to space the turns, so every scheduler takes the project's advisory lock.
    project = ProjectFactory(slug="busy", weekly_budget_usd=Decimal("1000000"))
    fake_telegram.register_bot(project.bot_token, "busy_bot")
    EchoModel(fake_llm).delay = 0.2  # turns still run while the next messages of their chat arrive
    measure = Deadlocks()
    before_count, before_log = measure.counted(), measure.logged()  # before the worker: its runner is never idle
    worker = worker_factory(concurrency=6)
    chat_ids = [40_000 + n for n in range(CHATS)]
    # Each sender posts its messages one after the other; all 24 senders start at the same instant.
    senders = [
        [text_update(chat_id, f"chat {chat_id} sender {s} message {m}") for m in range(MESSAGES_PER_SENDER)]
        for chat_id in chat_ids
        for s in range(SENDERS_PER_CHAT)
    ]
    total = CHATS * SENDERS_PER_CHAT * MESSAGES_PER_SENDER
    started = time.monotonic()

    def post_all(updates: list[dict]):
        return lambda client: [send(client, project, update) for update in updates]

    statuses = post_concurrently(Client, [post_all(updates) for updates in senders])

    assert statuses == [[200] * MESSAGES_PER_SENDER] * len(senders)

    def answered() -> int:
        return sum(len(reply) for chat_id in chat_ids for reply in echoed_messages(fake_telegram, project, chat_id))

    wait_until(lambda: answered() >= total, timeout=120 + total * 3, what=f"{total} messages answered", worker=worker)
    elapsed = time.monotonic() - started
    time.sleep(2.0)  # anything answered twice would arrive now
    worker.stop()  # its sessions end and flush their statistics
    after_count, after_log = measure.counted(), measure.logged()
    note = (
        f"{CHATS} chats x {SENDERS_PER_CHAT} senders x {MESSAGES_PER_SENDER} messages answered in {elapsed:.1f} s; "
        f"deadlocks {before_count} -> {after_count}"
        + (f", log lines {before_log} -> {after_log}" if before_log is not None else "")
    )
    print(f"\n{note}")
    chats = [(project, chat_id) for chat_id in chat_ids]
    result = tally("deadlocks: one project, concurrent senders", fake_telegram, chats, note=note)

    # Nothing lost, nothing twice: every message is named by exactly one delivered echo.
    assert (result.messages_in, result.lost, result.duplicated) == (total, 0, 0), result
    for chat_id in chat_ids:
        answered_texts = sorted(text for reply in echoed_messages(fake_telegram, project, chat_id) for text in reply)
        assert answered_texts == sorted(
            f"chat {chat_id} sender {s} message {m}"
            for s in range(SENDERS_PER_CHAT)
            for m in range(MESSAGES_PER_SENDER)
        )
    assert set(Turn.objects.filter(project=project).values_list("status", flat=True)) == {Turn.Status.SENT}
    assert not Generation.objects.filter(status__in=Generation.ACTIVE).exists()  # nothing left stuck
    # Seen once in three runs: one generation ended failed while every message was answered once. Shown in
    # the output (and its cause to be found) rather than failing the deadlock check it does not concern.
    failed = list(Generation.objects.filter(status=Generation.Status.FAILED).values_list("pk", "attempts", "error"))
    if failed:
        print(f"failed generations (every message answered once): {failed}")
    assert after_count == before_count, note
    if before_log is not None:
        assert after_log == before_log, note
