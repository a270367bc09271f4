"""Real infrastructure for tests: a private Redis and real Celery worker processes."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from config import queues
from config.local_redis import redis_answers

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_connection() -> str:
    """A DATABASE_URL for the database this test process uses (the test database)."""
    params = connection.settings_dict
    host = params.get("HOST") or ""
    socket_dir = (params.get("OPTIONS") or {}).get("host", "")
    user = quote(params.get("USER") or "")
    password = quote(params.get("PASSWORD") or "")
    netloc = f"{user}:{password}@{host}" + (f":{params['PORT']}" if params.get("PORT") else "")
    query = f"?host={socket_dir}" if socket_dir else ""
    return f"postgresql://{netloc}/{params['NAME']}{query}"


class CeleryWorker:
    """A real `celery -A config worker` subprocess sharing the test database, Redis and fakes."""

    def __init__(self, *, env: dict[str, str], log_path: Path, concurrency: int = 4) -> None:
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "CeleryWorker":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info",
             # One process with threads, as in local Qdrant mode (`manage.py dev`): it owns the store.
             "-Q", ",".join(queues.ALL), "-P", "threads", "-c", str(self.concurrency), "-n", f"test-{os.getpid()}@%h",
             "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited early; log:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker did not become ready; log:\n{self.log_tail()}")

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_bytes()[-size:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_environment(*, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url_of_connection(),
        DB_CONN_MAX_AGE="0",
        REDIS_URL=redis_url,
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        FIELD_ENCRYPTION_KEY=settings.FIELD_ENCRYPTION_KEY,
        TELEGRAM_API_BASE_URL=settings.TELEGRAM_API_BASE_URL,
        OPENAI_BASE_URL=settings.OPENAI_BASE_URL,
        OPENAI_API_KEYS=",".join(settings.OPENAI_API_KEYS),
        ANTHROPIC_BASE_URL=settings.ANTHROPIC_BASE_URL,
        ANTHROPIC_API_KEYS=",".join(settings.ANTHROPIC_API_KEYS),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


__all__ = ["CeleryWorker", "free_port", "redis_answers", "worker_environment"]
