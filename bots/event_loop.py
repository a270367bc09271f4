"""One asyncio event loop per process, on a daemon thread, and the bounded executor for database work.

python-telegram-bot's `Bot` and the async LLM clients keep pooled httpx connections bound to the loop
they first ran on, so they cannot survive `asyncio.run()` calls: everything async runs on this one loop.
The loop is created lazily and re-created after a fork (Celery prefork).

Coroutines never touch the Django ORM themselves (Django refuses it in a thread with a running loop):
they `await in_db(fn, ...)`, which runs `fn` on a thread of a small bounded pool (the async turn runner)
or, for a coroutine started from synchronous code with `run_sync`, on the calling thread itself. The
second keeps a synchronous caller's database work on its own connection and transaction (tests, Celery
tasks, `manage.py chat`), and makes a sync wrapper around an async service behave like the sync code it
replaced.
"""

import asyncio
import contextvars
import functools
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_thread: threading.Thread | None = None
_pool: "FairExecutor | None" = None
_pool_pid: int | None = None
_blocking: ThreadPoolExecutor | None = None
_blocking_pid: int | None = None
# The executor of the running coroutine's database work: the caller's thread under run_sync, else the pool.
_db_executor: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("db_executor", default=None)


def process_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid, _loop_thread
    with _lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="switchboard-async", daemon=True)
            thread.start()
            _loop, _loop_pid, _loop_thread = loop, os.getpid(), thread
        return _loop


def on_loop_thread() -> bool:
    return _loop_thread is not None and threading.current_thread() is _loop_thread


def _run_job(future: Future[Any], call: Callable[[], Any]) -> None:
    """Run one submitted call into its future (unless it was cancelled while queued)."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(call())
    except BaseException as exc:  # handed to the awaiting coroutine
        future.set_exception(exc)


class FairExecutor(Executor):
    """A bounded thread pool that serves its callers in turn: one queue per key (the project), round-robin.

    A burst of one project's turns queues behind itself; another project's next step runs after at most
    one step of each project ahead of it.
    """

    def __init__(self, *, max_workers: int, name: str) -> None:
        self._queues: OrderedDict[object, deque[tuple[Future[Any], Callable[[], Any]]]] = OrderedDict()
        self._ready = threading.Condition()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{n}", daemon=True) for n in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ready:
            self._queues.setdefault(fair_key.get(), deque()).append((future, functools.partial(fn, *args, **kwargs)))
            self._ready.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queues:
                    self._ready.wait()
                key, jobs = next(iter(self._queues.items()))
                future, call = jobs.popleft()
                if jobs:
                    self._queues.move_to_end(key)  # the next of this key waits for the other keys
                else:
                    del self._queues[key]
            _run_job(future, call)


# Whose work a coroutine's `in_db` step is (the runner sets the project id per generation): fairness key.
fair_key: contextvars.ContextVar[object] = contextvars.ContextVar("fair_key", default=None)


def db_pool() -> FairExecutor:
    """The process's bounded pool for ORM and tool work of coroutines (TURN_DB_THREADS threads)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = FairExecutor(max_workers=settings.TURN_DB_THREADS, name="switchboard-db")
            _pool_pid = os.getpid()
        return _pool


def _in_pool_thread(fn: Callable[[], T]) -> T:
    try:
        return fn()
    finally:
        _drop_unusable_connections()


def _drop_unusable_connections() -> None:
    """After a piece of work: a pool thread keeps its connection (no checkout per step), unless it broke.

    Django's close_old_connections would hand it back after every step (the pool wants CONN_MAX_AGE 0).
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.in_atomic_block or conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()  # work that left a transaction open must not leak it into the next step
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()


async def in_db(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking (ORM, tool) work off the loop and await its result.

    The work sees the coroutine's context variables (log ids), as with `asyncio.to_thread`; what it binds
    stays with it.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    executor = _db_executor.get()
    loop = asyncio.get_running_loop()
    if executor is None:
        return await loop.run_in_executor(db_pool(), _in_pool_thread, call)
    return await loop.run_in_executor(executor, call)


def blocking_pool() -> ThreadPoolExecutor:
    """A second small pool for long blocking work of coroutines (sync generation kinds), so that it never
    occupies the threads the turns' short database steps need."""
    global _blocking, _blocking_pid
    with _lock:
        if _blocking is None or _blocking_pid != os.getpid():
            _blocking = ThreadPoolExecutor(
                max_workers=settings.TURN_BLOCKING_THREADS, thread_name_prefix="switchboard-blocking"
            )
            _blocking_pid = os.getpid()
        return _blocking


async def in_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Like `in_db`, for work that blocks for long (a whole synchronous generation)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    executor = _db_executor.get()
    loop = asyncio.get_running_loop()
    if executor is None:
        return await loop.run_in_executor(blocking_pool(), _in_pool_thread, call)
    return await loop.run_in_executor(executor, call)


class _CallerThreadExecutor(Executor):
    """Runs submitted work on the thread blocked in `run_sync`, which serves it until the coroutine ends."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def serve(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                job = self.jobs.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("the coroutine did not finish in time") from None
            if job is None:
                return
            future, call = job
            _run_job(future, call)


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on the process loop and wait for its result from synchronous code.

    Its `in_db` work runs here, on the calling thread (its connection, its transaction).
    """
    if on_loop_thread():
        coro.close()
        raise RuntimeError("run_sync called on the event loop's own thread: await the coroutine instead")
    executor = _CallerThreadExecutor()

    async def with_caller_executor() -> T:
        _db_executor.set(executor)
        return await coro

    future = asyncio.run_coroutine_threadsafe(with_caller_executor(), process_loop())
    future.add_done_callback(lambda _: executor.jobs.put(None))
    try:
        executor.serve(timeout)
    except TimeoutError:
        future.cancel()
        raise
    return future.result(timeout=5)


async def pause(sleep: Callable[[float], Any], seconds: float) -> None:
    """Wait through a module's patchable `sleep` seam: an async one is awaited, a test's recorder just called."""
    outcome = sleep(seconds)
    if asyncio.iscoroutine(outcome):
        await outcome
