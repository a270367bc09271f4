"""Bot API access through python-telegram-bot, one cached `Bot` per token per process."""

import threading
import time
from typing import Any

from django.conf import settings
from telegram import Bot
from telegram.request import HTTPXRequest

from bots.event_loop import process_loop
from core import metrics

TELEGRAM_CONNECTIONS = 256
_bots: dict[tuple[int, str], Bot] = {}
_bots_lock = threading.Lock()


class MeasuredHTTPXRequest(HTTPXRequest):
    """Counts and times every Bot API request by method and HTTP status (the URL, with its token, is not kept)."""

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        started = time.perf_counter()
        status = "error"  # no answer: timeout, connection failure
        try:
            code, payload = await super().do_request(url, method, *args, **kwargs)
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
