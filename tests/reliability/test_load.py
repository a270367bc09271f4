"""Many chats across several projects at once, on a real worker, with a fake LLM of realistic latency.

Every message is answered, in order per chat, nothing crosses tenants. The figures (throughput, latency)
are printed; nothing is asserted about speed. The default run is small; `--run-slow` runs 50 chats x 5
messages over 5 projects.
"""

import random
import statistics
import time
from dataclasses import dataclass

import pytest
from django.test import Client

from bots.models import Generation, Turn
from tenants.models import Project
from tests.factories import ProjectFactory
from tests.fakes import llm_api
from tests.reliability.conftest import delivered_texts, echoed_messages, send, tally, wait_until
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Load:
    projects: int
    chats_per_project: int
    messages_per_chat: int
    llm_latency: tuple[float, float]  # seconds, uniform between
    gap_seconds: float  # between rounds of messages: users type, they do not all post at the same instant
    worker_threads: int


class SlowEcho:
    """An echoing model that takes a realistic while to answer (seeded, so runs compare)."""

    def __init__(self, fake_llm: llm_api.FakeLLM, latency: tuple[float, float]) -> None:
        self.random = random.Random(7)
        self.latency = latency
        fake_llm.openai.responder = self.respond

    def respond(self, request: llm_api.LLMRequest) -> llm_api.Reply:
        content = request.body["messages"][-1].get("content")
        return llm_api.text(f"re: {content}", delay=self.random.uniform(*self.latency))


def run_load(load: Load, *, client: Client, fake_telegram, fake_llm, worker_factory, label: str) -> None:
    projects: list[Project] = []
    for index in range(load.projects):
        project = ProjectFactory(slug=f"load-{index}", prompt=f"You are the assistant of shop {index}.")
        fake_telegram.register_bot(project.bot_token, f"load_{index}_bot")
        projects.append(project)
    SlowEcho(fake_llm, load.llm_latency)
    worker = worker_factory(concurrency=load.worker_threads)
    chats = [(project, 10_000 * (p + 1) + c) for p, project in enumerate(projects)
             for c in range(load.chats_per_project)]  # fmt: skip

    sent_at: dict[str, float] = {}
    started = time.monotonic()
    for round_ in range(load.messages_per_chat):
        for project, chat_id in chats:
            text = f"{project.slug} chat {chat_id} message {round_}"
            sent_at[text] = time.time()
            assert send(client, project, text_update(chat_id, text)) == 200
        time.sleep(load.gap_seconds)
    total = len(sent_at)

    def answered() -> int:
        return sum(len(m) for p, c in chats for m in echoed_messages(fake_telegram, p, c))

    wait_until(lambda: answered() >= total, timeout=60 + total * 2, what=f"{total} messages answered", worker=worker)
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # anything sent twice would arrive now

    # Latency per message: from the webhook post to the reply that answered it reaching Telegram.
    latencies = []
    for project, chat_id in chats:
        for call in fake_telegram.calls_to("sendMessage", token=project.bot_token):
            if call.ok and call.params.get("chat_id") == chat_id and call.params["text"].startswith("re: "):
                latencies += [call.at - sent_at[text] for text in call.params["text"][4:].split("\n\n")]
    replies = sum(len(delivered_texts(fake_telegram, p, c)) for p, c in chats)
    quantiles = statistics.quantiles(latencies, n=20)
    note = (
        f"{total / elapsed:.1f} msg/s, {replies} replies for {total} messages (bursts coalesced); latency "
        f"p50 {statistics.median(latencies):.1f} s, p95 {quantiles[18]:.1f} s, max {max(latencies):.1f} s; "
        f"LLM {load.llm_latency[0]}-{load.llm_latency[1]} s, {load.worker_threads} worker threads"
    )
    print(f"\n{label}: {note}")
    result = tally(label, fake_telegram, chats, note=note)

    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.messages_in == total
    for project, chat_id in chats:
        # Per-chat order: the replies answer the chat's messages in the order they were sent.
        answered_in_order = [text for message in echoed_messages(fake_telegram, project, chat_id) for text in message]
        assert answered_in_order == [
            f"{project.slug} chat {chat_id} message {n}" for n in range(load.messages_per_chat)
        ]
    # Nothing crosses tenants: every reply a bot sent names its own project and one of its own chats.
    own_chats = {project.bot_token: {c for p, c in chats if p == project} for project in projects}
    for call in fake_telegram.calls_to("sendMessage"):
        if call.ok:
            assert call.params["chat_id"] in own_chats[call.token]
            assert all(text.startswith(next(p.slug for p in projects if p.bot_token == call.token) + " ")
                       for text in call.params["text"][4:].split("\n\n"))  # fmt: skip
    assert not Generation.objects.filter(status__in=[*Generation.ACTIVE, Generation.Status.FAILED]).exists()
    assert set(Turn.objects.values_list("status", flat=True)) == {Turn.Status.SENT}


def test_load_several_projects_at_once(client, fake_telegram, fake_llm, worker_factory):
    load = Load(projects=3, chats_per_project=4, messages_per_chat=3, llm_latency=(0.3, 0.8), gap_seconds=0.4,
                worker_threads=6)  # fmt: skip
    run_load(load, client=client, fake_telegram=fake_telegram, fake_llm=fake_llm, worker_factory=worker_factory,
             label="load: 3 projects x 4 chats x 3 messages")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_load_50_chats_x_5_messages_over_5_projects(client, fake_telegram, fake_llm, worker_factory):
    load = Load(projects=5, chats_per_project=10, messages_per_chat=5, llm_latency=(0.5, 1.5), gap_seconds=1.0,
                worker_threads=8)  # fmt: skip
    run_load(load, client=client, fake_telegram=fake_telegram, fake_llm=fake_llm, worker_factory=worker_factory,
             label="load (slow): 5 projects x 10 chats x 5 messages")  # fmt: skip
