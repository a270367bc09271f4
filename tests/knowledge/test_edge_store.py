"""The embedded Qdrant Edge store: the upgrade from round 1's local mode, and the one-owner rule on its shards."""

import subprocess
import sys
import time

import pytest
from django.core.management import call_command

from knowledge.models import Chunk
from knowledge.pipeline import _collection, crawl_job_run
from knowledge.qdrant_store import qdrant_close, store_engine
from knowledge.search import knowledge_search
from knowledge.services import crawl_job_create
from knowledge.store_owner import StoreOwnedElsewhere, store_owner_claim, store_owner_release
from knowledge.store_rebuild import LOCAL_MODE_BACKUP, REBUILT_MARKER, store_upgrade_if_needed, store_upgrade_reason
from knowledge.vector_store import collection_ensure, points_count
from tests.infrastructure import BASE_DIR, CeleryWorker, worker_environment

OFFER = (
    "Office cleaning on contract: we clean offices every weekday evening. The monthly cost for an office of "
    "one hundred square metres is 900 euros, windows included. Contracts run for twelve months."
)
QUESTION = "office cleaning contract monthly cost"


@pytest.fixture
def embedded_path(tmp_path, settings):
    settings.QDRANT_URL = ""
    settings.QDRANT_PATH = str(tmp_path / "qdrant")
    qdrant_close()
    yield tmp_path / "qdrant"
    qdrant_close()
    store_owner_release()


def crawl_with_local_mode(project, settings) -> int:
    """Round 1: the knowledge base crawled into qdrant-client's local mode under QDRANT_PATH."""
    settings.QDRANT_EMBEDDED_ENGINE = "local"
    store_owner_claim()  # this test process stands in for the worker
    job = crawl_job_run(job=crawl_job_create(project=project, files=[("offer.txt", OFFER.encode())]))
    assert job.status == "done", job.error
    assert knowledge_search(project=project, query=QUESTION)
    qdrant_close()
    store_owner_release()
    settings.QDRANT_EMBEDDED_ENGINE = "edge"
    return Chunk.objects.filter(project=project).count()


@pytest.mark.django_db
def test_local_mode_data_is_rebuilt_into_edge_from_the_stored_chunks(embedded_path, project_a, project_b, settings):
    chunks = crawl_with_local_mode(project_a, settings)
    assert (embedded_path / "meta.json").exists()
    assert "local-mode data" in store_upgrade_reason()
    store_owner_claim()

    rebuilt = store_upgrade_if_needed()

    assert rebuilt == {project_a.pk: chunks}
    assert points_count(collection=_collection(project_a)) == chunks
    [hit, *_] = knowledge_search(project=project_a, query=QUESTION)
    assert hit.url == "file:offer.txt"
    assert knowledge_search(project=project_b, query=QUESTION) == []  # the other tenant has no knowledge base
    assert not (embedded_path / "meta.json").exists()
    assert (embedded_path / LOCAL_MODE_BACKUP / "meta.json").exists()  # kept aside, not deleted
    assert (embedded_path / "edge" / REBUILT_MARKER).is_file()
    assert store_upgrade_reason() is None
    assert store_upgrade_if_needed() is None  # the next start has nothing to do


@pytest.mark.django_db
def test_an_edge_store_never_rebuilt_is_rebuilt_and_the_command_rebuilds_on_demand(embedded_path, project_a, settings):
    store_owner_claim()
    job = crawl_job_run(job=crawl_job_create(project=project_a, files=[("offer.txt", OFFER.encode())]))
    assert job.status == "done", job.error
    assert "no Qdrant Edge store rebuilt" in store_upgrade_reason()
    qdrant_close()
    store_owner_release()  # the worker is stopped: the command becomes the owner while it runs

    call_command("knowledge_store_rebuild")

    store_owner_claim()
    assert store_upgrade_reason() is None
    assert points_count(collection=_collection(project_a)) == Chunk.objects.filter(project=project_a).count()
    assert knowledge_search(project=project_a, query=QUESTION)


@pytest.mark.django_db(transaction=True)
def test_the_worker_rebuilds_local_mode_data_when_it_starts(
    embedded_path, project_a, settings, redis_url, redis_client
):
    chunks = crawl_with_local_mode(project_a, settings)
    env = worker_environment(redis_url=redis_url, extra={"QDRANT_PATH": str(embedded_path)})
    worker = CeleryWorker(env=env, log_path=embedded_path.parent / "worker.log").start()
    try:
        deadline = time.monotonic() + 60
        while not (embedded_path / "edge" / REBUILT_MARKER).is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (embedded_path / "edge" / REBUILT_MARKER).is_file(), worker.log_tail()
        # Searches from another process go through the owner, which now answers from Edge.
        [hit, *_] = knowledge_search(project=project_a, query=QUESTION)
        assert hit.url == "file:offer.txt"
    finally:
        worker.stop()
    assert (embedded_path / LOCAL_MODE_BACKUP / "collection").is_dir()
    store_owner_claim()
    assert points_count(collection=_collection(project_a)) == chunks


HOLD = (
    "import django, sys, time; django.setup(); from django.conf import settings; "
    "settings.QDRANT_URL = ''; settings.QDRANT_PATH = sys.argv[1]; "
    "from knowledge.store_owner import store_owner_claim; store_owner_claim(path=sys.argv[1]); "
    "from knowledge.vector_store import collection_ensure; collection_ensure(project_id=1, model_id='t/t', dim=4); "
    "print('open', flush=True); time.sleep(60)"
)


def test_a_shard_open_in_another_process_is_refused_with_the_owner(embedded_path, redis_url):
    env = worker_environment(redis_url=redis_url, extra={})
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(embedded_path)], cwd=BASE_DIR, env=env,
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"open"
        with pytest.raises(StoreOwnedElsewhere) as refused:
            store_engine().count(collection_ensure(project_id=1, model_id="t/t", dim=4))
        assert str(embedded_path) in str(refused.value)
        assert f"process {holder.pid}" in str(refused.value)
    finally:
        holder.kill()
        holder.wait(10)
    qdrant_close()
    assert store_engine().count(collection_ensure(project_id=1, model_id="t/t", dim=4)) == 0  # free again
