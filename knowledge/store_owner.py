"""The embedded vector store has exactly one owner process.

With QDRANT_URL unset the knowledge base lives in an embedded store under QDRANT_PATH, which one process
at a time may open. The worker that serves it takes an exclusive, non-blocking OS lock (`fcntl.flock`)
on `QDRANT_PATH/owner.lock` when it starts, and writes its pid into that file; the lock goes with the
process (a crash releases it). A second worker on the same path refuses to start at once, saying which
path, which pid owns it and what to do. Every other process (web, management commands) reaches the store
through the owner's Celery tasks (`store_reachable_here` says whether this process may open it itself).

This module knows nothing of the store's engine: `knowledge/qdrant_store.py` opens whatever the engine is.
"""

import fcntl
import os
from pathlib import Path
from typing import IO

from django.conf import settings

LOCK_FILE = "owner.lock"

_held: IO[str] | None = None
_held_path: str | None = None
_held_pid: int | None = None


class StoreOwnedElsewhere(RuntimeError):
    """Another live process owns the embedded store at this path."""

    def __init__(self, *, path: str, pid: int | None) -> None:
        self.path, self.pid = path, pid
        owner = f"process {pid}" if pid else "another process"
        super().__init__(
            f"the embedded vector store at {path} is owned by {owner} (a worker already serves it). "
            "Run exactly one worker on this QDRANT_PATH (it holds hundreds of turns), or set QDRANT_URL to a "
            "Qdrant server to run more workers."
        )


def store_is_embedded() -> bool:
    """True when the store is a path on this machine (not a server, not the tests' in-memory store)."""
    return not settings.QDRANT_URL and settings.QDRANT_PATH != ":memory:"


def _lock_path(path: str) -> Path:
    return Path(path) / LOCK_FILE


def store_owner_pid(*, path: str | None = None) -> int | None:
    """The pid written by the store's owner, if it is alive; None when nobody owns it."""
    lock = _lock_path(path or settings.QDRANT_PATH)
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def store_owner_claim(*, path: str | None = None) -> None:
    """Become the store's owner for the life of this process, or raise StoreOwnedElsewhere at once."""
    global _held, _held_path, _held_pid
    path = str(path or settings.QDRANT_PATH)
    if _held is not None and _held_path == path and _held_pid == os.getpid():
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    handle = open(_lock_path(path), "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreOwnedElsewhere(path=path, pid=store_owner_pid(path=path)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held, _held_path, _held_pid = handle, path, os.getpid()


def store_owner_try_claim(*, path: str | None = None) -> bool:
    """Own the store if nobody does (e.g. `manage.py chat` with no worker running); False if owned elsewhere."""
    try:
        store_owner_claim(path=path)
    except StoreOwnedElsewhere:
        return False
    return True


def store_owner_claim_for_terminal() -> str | None:
    """`manage.py chat` runs turns itself: it opens the embedded store when no worker owns it."""
    if store_is_embedded() and store_owner_try_claim():
        return f"no worker owns the knowledge store at {settings.QDRANT_PATH}: this command opens it until it exits"
    return None


def store_owner_release() -> None:
    global _held, _held_path, _held_pid
    if _held is not None and _held_pid == os.getpid():
        fcntl.flock(_held.fileno(), fcntl.LOCK_UN)
        _held.close()
    _held, _held_path, _held_pid = None, None, None


def store_owned_here() -> bool:
    return _held is not None and _held_pid == os.getpid() and _held_path == str(settings.QDRANT_PATH)


def store_reachable_here() -> bool:
    """May this process open the store itself? (A server or in-memory store: always; embedded: its owner.)"""
    return not store_is_embedded() or store_owned_here()
