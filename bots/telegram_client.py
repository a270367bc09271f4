"""Bot API access through python-telegram-bot, one cached `Bot` per token per process."""

import asyncio
import threading
import time
from typing import Any

import httpx
from django.conf import settings
from telegram import Bot
from telegram.error import TimedOut
from telegram.request import HTTPXRequest

from bots.event_loop import process_loop
from core import metrics

TELEGRAM_CONNECTIONS = 256
_bots: dict[tuple[int, str], Bot] = {}
_bots_lock = threading.Lock()


class MeasuredHTTPXRequest(HTTPXRequest):
    """Counts and times every Bot API request by method and HTTP status (the URL, with its token, is not kept).

    Requests queue for a connection here, never in httpx's pool: httpcore 1.0.9 leaks a pool slot for good
    when a request waiting there times out or is cancelled just as a new connection is assigned to it
    (encode/httpcore#1093). Under a 1,000-chat burst those leaks used the whole pool up, and every later
    request of the process failed with a pool timeout. At most `connection_pool_size` requests are in
    httpx at once, so none ever waits in its pool.
    """

    def __init__(self, *, connection_pool_size: int, pool_timeout: float, **kwargs: Any) -> None:
        super().__init__(connection_pool_size=connection_pool_size, pool_timeout=pool_timeout, **kwargs)
        self._slots = asyncio.Semaphore(connection_pool_size)
        self._slot_timeout = pool_timeout

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        started = time.perf_counter()
        status = "error"  # no answer: timeout, connection failure
        pool_timeout = kwargs.get("pool_timeout")
        wait = pool_timeout if isinstance(pool_timeout, int | float) else self._slot_timeout
        try:
            try:
                async with asyncio.timeout(wait):  # a semaphore wait is safe to cancel
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise TimedOut("Pool timeout: every connection is busy; the request was not sent") from (
                    httpx.PoolTimeout(str(exc))
                )
            try:
                code, payload = await super().do_request(url, method, *args, **kwargs)
            finally:
                self._slots.release()
            status = str(code)
            return code, payload
        finally:
            metrics.telegram_calls.labels(method=api_method, status=status).inc()
            metrics.telegram_call_seconds.labels(method=api_method).observe(time.perf_counter() - started)


def _build_bot(token: str) -> Bot:
    timeout = settings.TELEGRAM_REQUEST_TIMEOUT_SECONDS
    base = settings.TELEGRAM_API_BASE_URL
    return Bot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        # Hundreds of turns of one process send at once: a wide pool, and a request that finds it busy
        # waits again (a pool timeout is a "never sent" failure: bots.telegram_outbox waits it out).
        request=MeasuredHTTPXRequest(
            connection_pool_size=TELEGRAM_CONNECTIONS,
            pool_timeout=settings.TELEGRAM_POOL_TIMEOUT_SECONDS,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        ),
    )


def bot_for_token(token: str) -> Bot:
    """The process's `Bot` for a token; keyed by loop too, since a `Bot` is bound to its loop."""
    if not token:
        raise ValueError("the project has no bot token")
    key = (id(process_loop()), token)
    with _bots_lock:
        bot = _bots.get(key)
        if bot is None:
            bot = _bots[key] = _build_bot(token)
        return bot
