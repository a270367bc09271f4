"""The one Qdrant client factory: a server (QDRANT_URL), local mode (QDRANT_PATH) or `:memory:` in tests.

Local mode allows one process per storage path and corrupts itself under concurrent writes from
threads, so the client is created lazily per process (never at import time) and every call goes
through a lock. In local mode only the Celery worker of the knowledge queue opens the store.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

_lock = threading.RLock()
_client: QdrantClient | None = None
_client_pid: int | None = None


def is_local_mode() -> bool:
    return not settings.QDRANT_URL


def _build_client() -> QdrantClient:
    # qdrant_client takes 1-2 s to import; only a process that opens the store pays for it.
    from qdrant_client import QdrantClient

    if settings.QDRANT_URL:
        return QdrantClient(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY or None, timeout=10)
    if settings.QDRANT_PATH == ":memory:":
        return QdrantClient(location=":memory:")
    os.makedirs(settings.QDRANT_PATH, exist_ok=True)
    return QdrantClient(path=settings.QDRANT_PATH)


class SerialisedClient:
    """Forwards every call to the process's client while holding the lock."""

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(_get_client(), name)
        if not callable(attribute):
            return attribute

        def locked(*args: Any, **kwargs: Any) -> Any:
            with _lock:
                return attribute(*args, **kwargs)

        return locked


def _get_client() -> QdrantClient:
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _client, _client_pid = _build_client(), os.getpid()
        return _client


def qdrant() -> SerialisedClient:
    return SerialisedClient()


def qdrant_close() -> None:
    """Release the store (local mode holds a file lock on its path)."""
    global _client, _client_pid
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client, _client_pid = None, None


# Close before interpreter teardown: the local client's __del__ fails noisily once imports are gone.
atexit.register(qdrant_close)
