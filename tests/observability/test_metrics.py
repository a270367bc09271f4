"""`GET /metrics`: every metric family of DESIGN.md after a scripted conversation, summed over processes.

The test process plays the web server and a real Celery worker process runs the turns; both write to
the same PROMETHEUS_MULTIPROC_DIR, so what the worker counted (LLM calls, Telegram sends, generations,
leads) shows up in the web process's /metrics. The directory outlives test runs, so assertions compare
a scrape before the conversation with one after it.
"""

import json
import os
import socket
import time
from datetime import timedelta

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from bots.models import Generation
from bots.tasks import generations_process_due_task
from core.metrics import metrics_directory_reset
from leads.followups import followups_fire_due
from leads.models import FollowUp, Lead
from matching.models import Match
from tests.fakes import llm_api
from tests.matching.dialogue import active_profile, toward
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

LEAD_GROUP = -100500
DESIGN_FAMILIES = {
    "switchboard_llm_requests": "LLM requests by provider/method/status",
    "switchboard_llm_request_duration_seconds": "LLM latency",
    "switchboard_telegram_api_calls": "Telegram API calls",
    "switchboard_telegram_api_duration_seconds": "Telegram API latency",
    "switchboard_webhook_requests": "webhook requests by project/status",
    "switchboard_webhook_request_duration_seconds": "webhook latency",
    "switchboard_messages": "messages by project and stage",
    "switchboard_timer_fires": "timer fires by action",
    "switchboard_timer_sequences_active": "active timer sequences",
    "switchboard_leads": "leads by project/status",
    "switchboard_generations": "generations by project/kind",
    "switchboard_generation_cost_usd": "generation cost by project/kind",
    "switchboard_matches": "matches by status",
}


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def family_names(client: Client) -> set[str]:
    return {family.name for family in text_string_to_metric_families(client.get("/metrics").content.decode())}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(predicate, what: str, worker, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")


def say(client: Client, project, chat_id: int, text: str, secret: str | None = None) -> int:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(text_update(chat_id, text)),
        content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret or project.webhook_secret,
    )  # fmt: skip
    return response.status_code


def test_metrics_show_every_family_after_a_scripted_conversation(
    client, project_a, project_b, fake_telegram, fake_llm, celery_worker
):
    project_a.lead_group_id = LEAD_GROUP
    project_a.followup_steps = [60, 120]
    project_a.quiet_hours_start = project_a.quiet_hours_end = None
    project_a.save()
    project_b.kind = "matching"
    project_b.save()
    for project in (project_a, project_b):
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    before = scrape(client)

    # A customer leaves a lead (model -> set_state -> send_lead -> final text), delivered to the group.
    fake_llm.openai.push(
        llm_api.tool_call("set_state", {"notes": "name: Anna\ncontact: +1 555 0100", "client_status": "hot"}),
        llm_api.tool_call("send_lead", {"summary": "Anna wants her windows washed."}),
        llm_api.text("Thank you, Anna!"),
    )
    assert say(client, project_a, 21, "Call me at +1 555 0100 about windows") == 200
    wait_until(lambda: Lead.objects.filter(project=project_a, status="sent").exists(), "lead sent", celery_worker)
    # Another goes silent: the first follow-up fires and the agent nudges.
    fake_llm.openai.push(llm_api.text("Hello again"), llm_api.text("Still there?"))
    assert say(client, project_a, 22, "How much are windows?") == 200
    wait_until(lambda: FollowUp.objects.filter(chat__telegram_chat_id=22, fire_at__isnull=False).exists()
               and not Generation.objects.filter(chat__telegram_chat_id=22, status__in=Generation.ACTIVE).exists(),
               "first turn", celery_worker)  # fmt: skip
    follow_up = FollowUp.objects.get(chat__telegram_chat_id=22)
    assert followups_fire_due(now=follow_up.fire_at + timedelta(seconds=1)) == 1
    generations_process_due_task.delay()
    wait_until(lambda: Generation.objects.filter(kind="timer_turn", status="done").exists(), "nudge", celery_worker)
    # A wrong secret and an unknown project are counted too, without a project label per scanner.
    assert say(client, project_a, 23, "hi", secret="wrong") == 403
    assert client.post("/telegram/webhook/nobody/", data="{}", content_type="application/json").status_code == 404
    # The matching project holds one pending match.
    seeker = active_profile(project_b, 31, "seeker", toward(0, 1.0, 1))
    provider = active_profile(project_b, 32, "provider", toward(0, 0.9, 2))
    Match.objects.create(project=project_b, user_a=seeker, user_b=provider, round=1, status="pending")

    expected = [
        # Counted in the worker process, read in this one: the multiprocess directory at work.
        ("switchboard_llm_requests_total", 4, {"provider": "openai", "method": "tools", "status": "ok"}),
        ("switchboard_llm_request_duration_seconds_count", 4, {"provider": "openai", "method": "tools"}),
        ("switchboard_telegram_api_calls_total", 2, {"method": "sendMessage", "status": "200"}),
        ("switchboard_telegram_api_calls_total", 1, {"method": "sendDocument", "status": "200"}),  # transcript
        ("switchboard_generations_total", 2, {"project": "alpha", "kind": "chat_turn", "status": "done"}),
        ("switchboard_generations_total", 1, {"project": "alpha", "kind": "timer_turn", "status": "done"}),
        ("switchboard_leads_total", 1, {"project": "alpha", "status": "finished"}),
        ("switchboard_leads_total", 1, {"project": "alpha", "status": "sent"}),
        ("switchboard_messages_total", 2, {"project": "alpha", "stage": "processed"}),
        ("switchboard_messages_total", 3, {"project": "alpha", "stage": "reply_sent"}),  # two replies, a nudge
        # Counted in this (web) process.
        ("switchboard_webhook_requests_total", 2, {"project": "alpha", "status": "200"}),
        ("switchboard_webhook_requests_total", 1, {"project": "alpha", "status": "403"}),
        ("switchboard_webhook_requests_total", 1, {"project": "(unknown)", "status": "404"}),
        ("switchboard_webhook_request_duration_seconds_count", 3, {"project": "alpha"}),
        ("switchboard_messages_total", 2, {"project": "alpha", "stage": "received"}),
        ("switchboard_timer_fires_total", 1, {"action": "scheduled"}),
    ]

    def missing(after: dict) -> list:
        return [
            item for item in expected if value(after, item[0], **item[2]) - value(before, item[0], **item[2]) < item[1]
        ]

    # The worker counts a finished generation or a sent lead just after it writes the row the test waited for.
    deadline = time.monotonic() + 10
    while missing(after := scrape(client)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert missing(after) == []
    assert set(DESIGN_FAMILIES) <= family_names(client)
    # States read from the database at scrape time, per project.
    assert value(after, "switchboard_matches", project="beta", status="pending") == 1
    assert value(after, "switchboard_timer_sequences_active", project="alpha") == 1
    beta_leads = [key for key in after if key[0].startswith("switchboard_leads") and ("project", "beta") in key[1]]
    assert all(after[key] == before.get(key, 0.0) for key in beta_leads)  # the other tenant's leads did not move


def test_metrics_can_require_a_bearer_token(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert response.status_code == 200
    assert b"switchboard_matches" in response.content


def test_a_new_run_forgets_only_the_files_of_processes_that_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    host = socket.gethostname()
    dead_pid = max(2, os.getpid() + 4_000_000)  # above any pid_max: certainly no such process
    live = [tmp_path / f"counter_{host}-{os.getpid()}.db", tmp_path / f"histogram_{host}-{os.getpid()}.db"]
    dead = [tmp_path / f"counter_{host}-{dead_pid}.db", tmp_path / f"gauge_livesum_{host}-{dead_pid}.db"]
    other_host = tmp_path / f"counter_elsewhere-{dead_pid}.db"  # another container's: not ours to judge
    for path in [*live, *dead, other_host]:
        path.write_bytes(b"")

    metrics_directory_reset()

    assert all(path.exists() for path in live)
    assert not any(path.exists() for path in dead)
    assert other_host.exists()
