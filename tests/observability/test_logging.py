"""Structured logs: one JSON object per line, carrying project, chat and generation ids, never a secret."""

import io
import json
import logging
import time

import pytest
import sentry_sdk

from bots.models import Generation
from core.error_reporting import event_redact
from core.log_context import log_context, log_context_bind
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def console() -> io.StringIO:
    """What the configured console handler (formatter and filters of the settings) writes."""
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "name", "") == "console"] or [
        h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler) and h.filters
    ]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_web_log_lines_are_json_with_the_bound_ids_and_no_token(console, client, project_a):
    response = client.post(
        f"/telegram/webhook/{project_a.slug}/", data="{not json", content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 400
    with log_context(project_id=project_a.pk, chat_id=42):
        try:
            raise RuntimeError(f"GET https://api.telegram.org/bot{TOKEN}/getMe failed")
        except RuntimeError:
            logging.getLogger("bots.test").exception("sending failed for %s", f"bot{TOKEN}")

    [malformed] = [line for line in lines(console) if line["logger"] == "bots.api"]
    [failure] = [line for line in lines(console) if line["logger"] == "bots.test"]
    assert (malformed["level"], malformed["logger"], malformed["project_id"]) == ("WARNING", "bots.api", project_a.pk)
    assert malformed["message"].startswith("malformed update")
    assert (failure["project_id"], failure["chat_id"], failure["level"]) == (project_a.pk, 42, "ERROR")
    assert "exc_info" in failure
    assert TOKEN not in console.getvalue()
    assert TOKEN.split(":")[1] not in console.getvalue()
    assert "[redacted]" in failure["message"]
    assert "[redacted]" in failure["exc_info"]


@pytest.mark.django_db(transaction=True)
def test_worker_log_lines_carry_task_project_chat_and_generation_ids(
    client, project_a, fake_telegram, fake_llm, celery_worker
):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_llm.openai.push(llm_api.text("Hello!"))
    client.post(
        f"/telegram/webhook/{project_a.slug}/", data=json.dumps(text_update(77, "Hi")),
        content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
    )  # fmt: skip
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    generation = Generation.objects.get(chat__telegram_chat_id=77)

    def worker_lines() -> list[dict]:
        return [json.loads(line) for line in celery_worker.log_tail(200_000).splitlines() if line.startswith("{")]

    finished = []
    for _ in range(50):  # the turn runner logs the outcome just after the send
        finished = [line for line in worker_lines() if line["message"].startswith("generation chat_turn finished")]
        if finished:
            break
        time.sleep(0.1)
    [done] = finished
    assert done["message"] == "generation chat_turn finished: done"
    assert (done["project_id"], done["chat_id"], done["generation_id"]) == (project_a.pk, 77, generation.pk)
    about_the_chat = [line for line in worker_lines() if line.get("chat_id") == 77]
    assert len(about_the_chat) >= 1
    assert all(line["project_id"] == project_a.pk for line in about_the_chat)
    assert project_a.bot_token not in celery_worker.log_tail(200_000)


def test_sentry_is_off_without_a_dsn_and_its_events_are_redacted():
    assert not sentry_sdk.get_client().is_active()  # tests never report anywhere
    event = {
        "message": f"boom with {TOKEN}",
        "exception": {"values": [{"value": "key sk-live-abcdefghijklmnop rejected", "stacktrace": {"frames": []}}]},
        "request": {"url": f"https://api.telegram.org/bot{TOKEN}/sendMessage"},
    }
    cleaned = event_redact(event)
    assert TOKEN not in json.dumps(cleaned)
    assert "sk-live-abcdefghijklmnop" not in json.dumps(cleaned)
    assert cleaned["request"]["url"] == "https://api.telegram.org/bot[redacted]/sendMessage"


def test_each_web_request_starts_without_the_ids_of_earlier_work(console, client, project_a):
    # Ids bound by earlier work on this thread (a service that bound them and never unbound).
    log_context_bind(project_id=999, chat_id=777, generation_id=555)
    assert client.post("/metrics").status_code == 405  # logged by django.request inside the request

    [refused] = [line for line in lines(console) if line["logger"] == "django.request"]
    assert refused["message"] == "Method Not Allowed: /metrics"
    assert not {"project_id", "chat_id", "generation_id"} & set(refused)
