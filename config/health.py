"""Readiness checks of the platform's dependencies: database, Redis and Qdrant."""

from django.conf import settings
from django.db import connection

from knowledge.qdrant_store import store_engine
from knowledge.store_owner import store_is_embedded, store_owner_pid, store_reachable_here

CHECK_TIMEOUT_SECONDS = 2.0


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
    if not store_is_embedded():
        store_engine().names()
        return
    # The embedded store: only its owner (the worker) may open it, so check that the owner is alive.
    if store_reachable_here():
        store_engine().names()
        return
    if store_owner_pid() is None:
        raise RuntimeError(f"no worker owns the embedded vector store at {settings.QDRANT_PATH}: start the worker")


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
