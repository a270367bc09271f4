"""New messages reach the worker through PostgreSQL's LISTEN / NOTIFY, not through the broker.

The webhook stores a message and sends `NOTIFY switchboard_chats, '<project id>:<chat pk>'` (a few bytes,
no Celery message to build and publish). Each worker process listens on one connection of its own and
processes the chat on its event loop's fair database pool (`in_db`, one queue per project), so one
tenant's burst of messages never queues another tenant's chat behind it, and no Celery thread is held.

A notification is only a wake-up: the message itself is in the database. When the listener (re)connects
it first processes every chat with unprocessed messages (those stored while no worker listened); the
beat sweep re-queues a chat whose messages stay unprocessed (bots/sweeps.py). With several workers every
one hears every notification: the chat's row lock makes the second a cheap no-op.
"""

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from bots.chat_processing import chat_process
from bots.event_loop import fair_key, in_db, process_loop
from bots.models import Message
from core.log_context import log_context_start

logger = logging.getLogger(__name__)

CHANNEL = "switchboard_chats"
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0)
CATCH_UP_BATCH = 1000


def chat_intake_notify(*, project_id: int, chat_id: int) -> None:
    """Tell the workers that the chat has a new message (sent at commit, or now outside a transaction).

    The message is stored already: if the notification cannot be sent, the sweep takes the chat.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{project_id}:{chat_id}"])
    except DatabaseError as exc:
        logger.warning("chat %s left to the sweep: %s", chat_id, exc, extra={"project_id": project_id})


def chats_with_unprocessed_messages(limit: int = CATCH_UP_BATCH) -> list[tuple[int, int]]:
    """(project id, chat pk) of the chats with messages no worker processed yet (the sweep takes any beyond)."""
    rows = (
        Message.objects.filter(processed_at__isnull=True)
        .values_list("project_id", "chat_id")
        .order_by("chat_id")
        .distinct()[:limit]
    )
    return list(rows)


def chat_process_and_kick(chat_id: int) -> None:
    """Process the chat's new messages; a turn it queued runs on this process's runner, or a worker's."""
    from bots.tasks import generations_kick_now  # tasks wire the services: imported at call time, no cycle

    generation = chat_process(chat_id=chat_id)
    if generation is not None and generation.scheduled_for <= timezone.now():
        generations_kick_now()


class ChatIntakeListener:
    def __init__(self) -> None:
        self._queued: set[int] = set()  # chats waiting for the pool: a burst of one chat is processed once
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                params = listener_connection_params()
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    for project_id, chat_id in await in_db(chats_with_unprocessed_messages):
                        self._schedule(project_id, chat_id)
                    async for notice in conn.notifies():
                        self._received(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                logger.warning("chat intake listener: %s; listening again in %.0f s", exc, delay)
                await asyncio.sleep(delay)

    def _received(self, payload: str) -> None:
        try:
            project_id, chat_id = (int(part) for part in payload.split(":"))
        except ValueError:
            logger.warning("chat intake listener: ignored a malformed notification %r", payload[:100])
            return
        self._schedule(project_id, chat_id)

    def _schedule(self, project_id: int, chat_id: int) -> None:
        if chat_id in self._queued:
            return
        self._queued.add(chat_id)
        task = asyncio.create_task(self._process(project_id, chat_id), name=f"chat-intake-{chat_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, project_id: int, chat_id: int) -> None:
        log_context_start(project_id=project_id)
        # A queue of the pool's own per project: a burst's new chats take turns with its turns in flight,
        # which would otherwise wait behind hundreds of them.
        fair_key.set(("intake", project_id))
        try:
            await in_db(self._started, chat_id)
        except Exception:
            logger.exception("processing chat %s failed; the sweep retries it", chat_id)

    def _started(self, chat_id: int) -> None:
        # Off the queue once its processing starts: a message stored from now on needs another pass.
        self._queued.discard(chat_id)
        chat_process_and_kick(chat_id)

    async def stop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main


def listener_connection_params() -> dict[str, Any]:
    """psycopg.connect() arguments for a connection of its own to the database the ORM uses."""
    params = connections["default"].get_connection_params()
    for key in ("context", "cursor_factory", "prepare_threshold"):  # the sync ORM's, not a plain connection's
        params.pop(key, None)
    return params


_listener: ChatIntakeListener | None = None


def chat_intake_listen() -> None:
    """Start this process's listener on its event loop (idempotent)."""
    global _listener
    if _listener is not None:
        return
    listener = ChatIntakeListener()

    async def start() -> None:
        listener._main = asyncio.create_task(listener.run(), name="switchboard-chat-intake")

    asyncio.run_coroutine_threadsafe(start(), process_loop()).result(10)
    _listener = listener
    logger.info("chat intake: listening for new messages")


def chat_intake_stop() -> None:
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        asyncio.run_coroutine_threadsafe(listener.stop(), process_loop()).result(10)
