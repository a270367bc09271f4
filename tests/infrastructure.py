"""Real infrastructure for tests: a private Redis and real Celery worker processes."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.db.models import F

from bots.generations import generations_recover_expired_leases
from bots.models import Generation
from config.local_redis import redis_answers

BASE_DIR = Path(__file__).resolve().parent.parent

# The generation lease of the tests' workers: the shipped 10 s. A 4 s lease made the faults resolve sooner,
# but on a loaded machine (parallel sessions, the other core busy) a worker stalled for 6 s mid-turn and its
# own runner requeued the turn it was still running, which then ran twice.
WORKER_LEASE_SECONDS = "10"


def dead_worker_leases_recovered() -> int:
    """The sweep's lease recovery as it runs once a killed worker's leases have run out, without waiting a
    whole lease for it: every running generation's lease moves one lease back, as the killed worker can
    extend none of them. Call it before a replacement worker starts (its leases would move too). Returns
    how many generations went back to the queue."""
    Generation.objects.filter(status=Generation.Status.RUNNING).update(
        lease_expires_at=F("lease_expires_at") - timedelta(seconds=int(WORKER_LEASE_SECONDS))
    )
    return generations_recover_expired_leases()


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


def procfile_worker_arguments(*, concurrency: int | None = None) -> list[str]:
    """The Procfile's worker line as arguments (its `${WORKER_CONCURRENCY:-N}` default, or `concurrency`)."""
    line = next(line for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    command = line.split(":", 1)[1].strip()
    command = re.sub(r"\$\{WORKER_CONCURRENCY:-(\d+)\}", lambda m: str(concurrency or m.group(1)), command)
    program, *arguments = command.split()
    assert program == "celery", line
    return [sys.executable, "-m", "celery", *arguments]


class CeleryWorker:
    """A real worker subprocess started with the Procfile's worker line, on the test database, Redis and fakes."""

    def __init__(self, *, env: dict[str, str], log_path: Path, concurrency: int | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        # The Procfile's line, with a node name of its own and without the cluster chatter a lone test
        # worker does not need.
        return [*procfile_worker_arguments(concurrency=self.concurrency), "-n", f"test-{os.getpid()}@%h",
                "--without-heartbeat", "--without-mingle", "--without-gossip"]  # fmt: skip

    def start(self) -> "CeleryWorker":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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


def worker_environment(*, redis_url: str, extra: dict[str, str], as_deployed: bool = False) -> dict[str, str]:
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
    if not as_deployed:
        # A test waits for its worker: yielding the CPU to other work (the shipped WORKER_NICE) only slows
        # the suite on a busy machine. Benchmarks run the worker as deployed.
        env["WORKER_NICE"] = "0"
    env.update(extra)
    return env


__all__ = [
    "WORKER_LEASE_SECONDS",
    "CeleryWorker",
    "dead_worker_leases_recovered",
    "free_port",
    "redis_answers",
    "worker_environment",
]
