"""One `manage.py dev` per data directory: an OS file lock under var/, and the running copy's address in it."""

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class AlreadyRunning(RuntimeError):
    """Another copy runs on this data directory; the message says where and how to stop it."""


@dataclass
class InstanceLock:
    path: Path
    handle: IO[str]

    def release(self) -> None:
        self.handle.close()  # closing the descriptor drops the lock


def instance_lock_acquire(*, var_dir: Path, url: str) -> InstanceLock:
    """Hold `var/run.lock` for this process's life (the OS drops it when the process dies, even on SIGKILL)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "run.lock"
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            running = json.loads(handle.read() or "{}")
        except ValueError:
            running = {}
        handle.close()
        where = running.get("url", "an unknown address")
        raise AlreadyRunning(
            f"Switchboard is already running at {where} (pid {running.get('pid', '?')}) on the data in {var_dir}: "
            "two copies would share its database, Redis and knowledge store. Use that one, stop it with Ctrl-C, "
            "or give this copy its own VAR_DIR."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "url": url}))
    handle.flush()
    return InstanceLock(path=path, handle=handle)
