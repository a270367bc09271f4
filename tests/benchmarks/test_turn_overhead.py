"""Platform overhead of one agent turn: webhook POST -> sendMessage at the fake Telegram server.

The fake LLM answers at once, so what is measured is the platform: webhook, Celery hops, database,
history, the LLM client and the Bot API client. Prints p50/p95/max over sequential turns.
"""

import json
import statistics
import time

import pytest
from django.test import Client

from tests.benchmarks.report import figure, note
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

TURNS = 60
WARMUP = 5


def test_turn_overhead_with_a_zero_latency_llm(client: Client, fake_telegram, fake_llm, project_a, celery_worker):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_llm.openai.responder = lambda request: llm_api.text("ok")
    latencies = []
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
    note(benchmark, f"{TURNS} sequential turns after {WARMUP} warm-up ones over ten chats with growing histories; "
         "the webhook POST in this process, a real Celery worker (threads pool) doing chat processing, the "
         "generation queue, the agent loop over HTTP to the fake LLM and sendMessage to the fake Telegram "
         "server.")  # fmt: skip
    assert len(latencies) == TURNS
