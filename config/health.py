"""Readiness checks of the platform's dependencies: database, Redis and Qdrant."""

from django.conf import settings
from django.db import connection

from config import queues
from config.celery_app import app as celery_app
from knowledge.qdrant_store import is_local_mode, qdrant

CHECK_TIMEOUT_SECONDS = 2.0
# A broadcast waits its whole timeout for replies, so it sets the endpoint's latency in local mode.
WORKER_BROADCAST_SECONDS = 1.0


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    # redis-py takes ~0.5 s to import; the URLconf (and so every command's system checks) loads this module.
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def check_qdrant() -> None:
    if not is_local_mode():
        qdrant().get_collections()
        return
    # Local mode: only the knowledge worker may open the store, so ask whether it is alive.
    replies = celery_app.control.inspect(timeout=WORKER_BROADCAST_SECONDS).active_queues() or {}
    if not any(q["name"] == queues.KNOWLEDGE for worker in replies.values() for q in worker):
        raise RuntimeError("no worker is serving the knowledge queue that owns the local Qdrant store")


CHECKS = {"database": check_database, "redis": check_redis, "qdrant": check_qdrant}


def readiness() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is shown, not raised
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    return results
