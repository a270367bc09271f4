"""Generation queue: claims per second with several worker processes, and no generation claimed twice.

Thousands of due generations are claimed (`SELECT ... FOR UPDATE SKIP LOCKED`, status -> running, lease)
by 1 and then 4 forked worker processes, each with its own database connection, until the queue is empty.
Every generation must be claimed exactly once.
"""

import multiprocessing
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from bots.generations import generation_claim_next
from bots.models import Generation
from tests.benchmarks.profiling import profiled
from tests.benchmarks.report import figure, note, percentile

pytestmark = pytest.mark.django_db(transaction=True)

BENCHMARK = "Generation queue claims"
GENERATIONS = 3000


def _claim_until_empty(worker: int) -> tuple[list[int], list[float]]:
    claimed, latencies = [], []
    with profiled(f"generation-claims-worker{worker}"):
        _claim_loop(claimed, latencies)
    connections.close_all()
    return claimed, latencies


def _claim_loop(claimed: list[int], latencies: list[float]) -> None:
    while True:
        started = time.perf_counter()
        generation = generation_claim_next()
        if generation is None:
            break
        latencies.append(time.perf_counter() - started)
        claimed.append(generation.pk)


def _fill(projects: list) -> None:
    due = timezone.now() - timedelta(seconds=1)
    Generation.objects.bulk_create(
        Generation(project=projects[i % len(projects)], kind=Generation.Kind.SUMMARY, scheduled_for=due)
        for i in range(GENERATIONS)
    )


@pytest.mark.parametrize("workers", [1, 4])
def test_generation_claims_per_second(workers, project_a, project_b):
    _fill([project_a, project_b])
    connections.close_all()  # the children open their own connections
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_claim_until_empty, range(workers))
    elapsed = time.perf_counter() - started

    claimed = [pk for ids, _ in results for pk in ids]
    latencies = [seconds for _, samples in results for seconds in samples]
    duplicates = len(claimed) - len(set(claimed))
    all_claimed = set(claimed) == set(Generation.objects.values_list("pk", flat=True))
    running = Generation.objects.filter(status=Generation.Status.RUNNING, attempts=1).count()
    figure(BENCHMARK, f"claims/s with {workers} worker process(es)", f"{len(claimed) / elapsed:.0f}")
    figure(BENCHMARK, f"claim latency p50 / p95 ({workers} workers)",
           f"{percentile(latencies, 0.5) * 1000:.2f} / {percentile(latencies, 0.95) * 1000:.2f} ms")  # fmt: skip
    figure(BENCHMARK, f"claimed twice / left unclaimed ({workers} workers)",
           f"{duplicates} / {GENERATIONS - len(set(claimed))}", target="0 / 0",
           met=duplicates == 0 and all_claimed and running == GENERATIONS)  # fmt: skip
    if workers > 1:
        note(BENCHMARK, f"{GENERATIONS} due generations of two projects; each worker is a forked process with its own "
             "PostgreSQL connection claiming one row per transaction until the queue is empty.")  # fmt: skip
    assert duplicates == 0
    assert all_claimed
    assert running == GENERATIONS
