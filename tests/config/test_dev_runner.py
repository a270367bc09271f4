"""`manage.py dev` (what `bin/run` starts) brings up web, workers and beat, and Ctrl-C stops them all."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.infrastructure import BASE_DIR, free_port, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; output:\n{log.read_text()[-6000:]}")


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None


def test_dev_runner_serves_admin_and_health_with_all_processes_alive(redis_url, tmp_path):
    port = free_port()
    log = tmp_path / "dev.log"
    env = worker_environment(redis_url=redis_url, extra={"VAR_DIR": str(tmp_path / "var"),
                                                         "QDRANT_PATH": str(tmp_path / "qdrant")})  # fmt: skip
    with log.open("wb") as output:
        runner = subprocess.Popen(
            [sys.executable, "manage.py", "dev", "--port", str(port), "--no-demo"],
            cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: (r := get(f"{base}/healthz")) is not None and r.status_code == 200, 90, "/healthz", log)
        # Ready means the database, Redis and the knowledge worker that owns the local Qdrant store all answer.
        wait_until(lambda: (r := get(f"{base}/readyz")) is not None and r.status_code == 200, 90, "/readyz", log)
        assert get(f"{base}/admin/login/").status_code == 200

        wait_until(lambda: b"beat: Starting" in log.read_bytes(), 60, "celery beat", log)
        # The banner comes once /healthz answers and again when /readyz does, after the process logs.
        wait_until(lambda: "Switchboard ready" in log.read_text(), 60, "the banner once ready", log)
        output = log.read_text()
        assert "username: admin" in output
        assert f"{base}/admin/" in output
        commands = " ".join(" ".join(p.cmdline()) for p in psutil.Process(runner.pid).children(recursive=True))
        for process in ("gunicorn", "celery -A config worker -l info -P threads", "celery -A config beat"):
            assert process in commands, f"{process!r} is not running"
        children = psutil.Process(runner.pid).children(recursive=True)
    finally:
        os.killpg(runner.pid, signal.SIGINT) if runner.poll() is None else None
    runner.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"


def test_one_copy_per_data_directory_and_ctrl_c_stops_everything_it_started(redis_url, tmp_path):
    """The embedded PostgreSQL included: with DATABASE_URL unset, `dev` runs its own under var/pgdata."""
    port, var = free_port(), tmp_path / "var"
    log = tmp_path / "dev.log"
    env = worker_environment(redis_url=redis_url, extra={"VAR_DIR": str(var), "QDRANT_PATH": str(tmp_path / "qdrant"),
                                                         "DATABASE_URL": ""})  # fmt: skip
    with log.open("wb") as output:
        runner = subprocess.Popen(
            [sys.executable, "manage.py", "dev", "--port", str(port), "--no-demo"],
            cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def postgres_of_this_run() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if str(var / "pgdata") in " ".join(process.info["cmdline"] or []):
                found.append(process)
        return found

    try:
        wait_until(lambda: "Switchboard web is up" in log.read_text(), 240, "the banner after /healthz", log)
        assert get(f"{base}/healthz").status_code == 200  # the banner came once the server answered
        banner = log.read_text().split("Switchboard web is up", 1)[1]
        assert f"Switchboard admin: {base}/admin/" in banner
        assert postgres_of_this_run(), "the embedded PostgreSQL is not running under the run's var/"

        second = subprocess.run(
            [sys.executable, "manage.py", "dev", "--port", str(free_port()), "--no-demo"],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"Switchboard is already running at {base}" in second.stderr
        assert get(f"{base}/healthz").status_code == 200  # the first copy is untouched
        children = psutil.Process(runner.pid).children(recursive=True)
    finally:
        os.killpg(runner.pid, signal.SIGINT) if runner.poll() is None else None
    runner.wait(30)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
    wait_until(lambda: not postgres_of_this_run(), 15, "the embedded PostgreSQL to stop", log)
