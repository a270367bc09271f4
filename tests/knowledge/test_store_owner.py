"""The embedded vector store has exactly one owner process; a second worker on its path refuses to start."""

import subprocess
import sys
import time

import pytest

from knowledge.store_owner import StoreOwnedElsewhere, store_owner_claim, store_owner_pid, store_owner_release
from tests.infrastructure import BASE_DIR, CeleryWorker, worker_environment

HOLD = (
    "import django, sys, time; django.setup(); "
    "from knowledge.store_owner import store_owner_claim; store_owner_claim(path=sys.argv[1]); "
    "print('owner', flush=True); time.sleep(60)"
)


def test_a_second_owner_of_the_same_path_is_refused_with_the_owner_pid(tmp_path, redis_url, db):
    path = str(tmp_path / "qdrant")
    env = worker_environment(redis_url=redis_url, extra={})
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"owner"
        assert store_owner_pid(path=path) == holder.pid
        with pytest.raises(StoreOwnedElsewhere) as refused:
            store_owner_claim(path=path)
        message = str(refused.value)
        assert path in message
        assert str(holder.pid) in message
        assert "QDRANT_URL" in message
    finally:
        holder.kill()
        holder.wait(10)
    store_owner_claim(path=path)  # the owner is gone (a crash releases the lock): the path is free again
    store_owner_release()


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_on_the_embedded_store_refuses_to_start(tmp_path, redis_url, redis_client):
    env = worker_environment(redis_url=redis_url, extra={"QDRANT_PATH": str(tmp_path / "qdrant")})
    first = CeleryWorker(env=env, log_path=tmp_path / "first.log").start()
    try:
        second = CeleryWorker(env=env, log_path=tmp_path / "second.log")
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="exited early"):
            second.start()
        assert time.monotonic() - started < 30  # at once, not after a timeout
        log = (tmp_path / "second.log").read_text()
        assert "refusing to start" in log
        assert str(tmp_path / "qdrant") in log
        assert f"process {first.process.pid}" in log
        assert second.process.returncode != 0
        assert first.process.poll() is None  # the owner keeps running
    finally:
        first.stop()


def test_with_a_qdrant_server_there_is_no_owner(settings):
    from knowledge.store_owner import store_is_embedded, store_reachable_here

    settings.QDRANT_URL = "http://qdrant:6333"
    assert not store_is_embedded()
    assert store_reachable_here()
