"""Platform overhead of one agent turn: webhook POST -> sendMessage at the fake Telegram server.

The fake LLM answers at once, so what is measured is the platform: webhook, Celery hops, database,
history, the LLM client and the Bot API client. Prints p50/p95/max over sequential turns.
"""

import json
import statistics
import time
from itertools import pairwise

import pytest
from django.test import Client

from bots.models import LLMCall, Message
from tests.benchmarks.report import figure, note
from tests.fakes import llm_api
from tests.infrastructure import CeleryWorker, worker_environment
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

TURNS = 150
WARMUP = 5


@pytest.fixture
def production_worker(transactional_db, redis_client, redis_url, tmp_path):
    """The worker as deployed: database connections kept across tasks (DB_CONN_MAX_AGE 60, where the tests'
    worker opens one per task) and INFO logs."""
    extra = {"QDRANT_PATH": str(tmp_path / "qdrant"), "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "INFO"}
    worker = CeleryWorker(
        env=worker_environment(redis_url=redis_url, extra=extra, as_deployed=True), log_path=tmp_path / "worker.log"
    )
    yield worker.start()
    worker.stop()


def _stage_breakdown(project, turns: list[tuple[float, float, str]]) -> dict[str, list[float]]:
    """Where each turn's time went, from the timestamps the platform stores along the way."""
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for started, sent_at, text in turns:
        message = Message.objects.select_related("turn__generation").get(project=project, text=text)
        generation = message.turn.generation
        answered = LLMCall.objects.filter(generation=generation).order_by("pk").last()
        marks = [started, message.created_at.timestamp(), message.processed_at.timestamp(),
                 generation.started_at.timestamp(), answered.created_at.timestamp(), sent_at]  # fmt: skip
        for name, (begin, end) in zip(STAGES, pairwise(marks), strict=True):
            stages[name].append((end - begin) * 1000)
    return stages


STAGES = (
    "webhook: request to message stored",
    "chat task: queue hop + commands + generation queued",
    "generation task: queue hop + claim",
    "turn: history, prompt, LLM round-trip, recorded",
    "reply stored and sent to Telegram",
)


def test_turn_overhead_with_a_zero_latency_llm(client: Client, fake_telegram, fake_llm, project_a, production_worker):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_llm.openai.responder = lambda request: llm_api.text("ok")
    latencies, stages = [], []
    for index in range(TURNS + WARMUP):
        chat_id = 10_000 + index % 10  # ten chats, each with a growing history
        started = time.time()
        client.post(
            f"/telegram/webhook/{project_a.slug}/", data=json.dumps(text_update(chat_id, f"message {index}")),
            content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
        )  # fmt: skip
        [*_, sent] = fake_telegram.wait_for("sendMessage", count=index + 1, token=project_a.bot_token, timeout=30)
        if index >= WARMUP:
            latencies.append((sent.at - started) * 1000)
            stages.append((started, sent.at, f"message {index}"))
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"\nturn overhead over {len(latencies)} turns (zero-latency LLM, real worker): "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    benchmark = "Agent turn platform overhead (zero-latency LLM)"
    figure(benchmark, "webhook -> sendMessage p50", f"{p50:.1f} ms")
    figure(benchmark, "webhook -> sendMessage p95", f"{p95:.1f} ms", target="< 50 ms", met=p95 < 50)
    figure(benchmark, "max", f"{latencies[-1]:.1f} ms")
    for stage, samples in _stage_breakdown(project_a, stages).items():
        p95_stage = sorted(samples)[int(len(samples) * 0.95) - 1]
        figure(benchmark, f"stage: {stage} (p50 / p95)", f"{statistics.median(samples):.1f} / {p95_stage:.1f} ms")
    note(benchmark, f"{TURNS} sequential turns after {WARMUP} warm-up ones over ten chats with growing histories; "
         "the webhook POST in this process, a real Celery worker (4 threads, persistent DB connections) doing chat "
         "processing, the "
         "generation queue, the agent loop over HTTP to the fake LLM and sendMessage to the fake Telegram "
         "server.")  # fmt: skip
    assert len(latencies) == TURNS
