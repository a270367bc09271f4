"""One asyncio event loop per process, on a daemon thread, for the async client libraries.

python-telegram-bot's `Bot` keeps pooled httpx connections bound to the loop it first ran on, so a
`Bot` cannot survive `asyncio.run()` calls. Synchronous code (Celery tasks, commands, views) submits
coroutines here instead. The loop is created lazily and re-created after a fork (Celery prefork).
"""

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def process_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="switchboard-async", daemon=True)
            thread.start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on the process loop and wait for its result from synchronous code."""
    return asyncio.run_coroutine_threadsafe(coro, process_loop()).result(timeout)
