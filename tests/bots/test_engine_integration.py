"""The conversation engine end to end: webhook -> real Celery worker -> fake LLM -> fake Telegram."""

import json
import time

import pytest
from django.test import Client

from bots.models import Chat, Generation, Message, Turn
from bots.tasks import generations_process_due_task
from tests.fakes import llm_api
from tests.infrastructure import dead_worker_leases_recovered
from tests.telegram_updates import photo_update, text_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    return project_a, project_b


def send(client: Client, project, update: dict) -> None:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(update), content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200, response.content


def replies(fake_telegram, project, chat_id: int) -> list[str]:
    calls = fake_telegram.calls_to("sendMessage", token=project.bot_token)
    return [c.params["text"] for c in calls if c.ok and c.params["chat_id"] == chat_id]


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


def test_webhook_update_is_answered_in_the_right_chat_of_the_right_bot(client, bots, fake_telegram, fake_llm,
                                                                       celery_worker):  # fmt: skip
    project_a, project_b = bots
    # Alpha's model takes a second: long enough for "typing..." to be shown whatever the machine's load.
    fake_llm.openai.push(llm_api.text("Hello from Alpha!", delay=1.0), llm_api.text("Привет от Беты!"))
    send(client, project_a, text_update(111, "Hi"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    send(client, project_b, text_update(222, "Привет"))
    fake_telegram.wait_for("sendMessage", token=project_b.bot_token, timeout=30)

    assert replies(fake_telegram, project_a, 111) == ["Hello from Alpha!"]
    assert replies(fake_telegram, project_b, 222) == ["Привет от Беты!"]
    first_request = fake_llm.requests_to("openai")[0].body
    assert first_request["messages"][-1] == {"role": "user", "content": "Hi"}
    assert "You are a helpful test consultant." in first_request["messages"][0]["content"]
    assert fake_telegram.calls_to("sendChatAction", token=project_a.bot_token)
    turn = Turn.objects.get(chat__telegram_chat_id=111)
    assert (turn.status, turn.reply, turn.user_text) == ("sent", "Hello from Alpha!", "Hi")
    assert Generation.objects.get(chat=turn.chat).status == "done"


def test_a_burst_during_a_slow_turn_becomes_one_combined_turn(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    fake_llm.openai.push(llm_api.text("First answer", delay=3.0), llm_api.text("Combined answer"))
    send(client, project_a, text_update(111, "What do you clean?"))
    fake_llm.wait_for("openai", 1, timeout=30)
    send(client, project_a, text_update(111, "Also windows?"))
    send(client, project_a, text_update(111, "And how much?"))
    send(client, project_a, text_update(111, "Tomorrow possible?"))
    fake_telegram.wait_for("sendMessage", count=2, token=project_a.bot_token, timeout=40)
    time.sleep(1.0)

    assert replies(fake_telegram, project_a, 111) == ["First answer", "Combined answer"]
    requests = fake_llm.requests_to("openai")
    assert len(requests) == 2
    combined = requests[1].body["messages"][-1]["content"]
    assert combined == "Also windows?\n\nAnd how much?\n\nTomorrow possible?"
    assert Turn.objects.filter(chat__telegram_chat_id=111).count() == 2


def test_a_worker_killed_mid_turn_answers_the_message_exactly_once_after_restart(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_llm.openai.push(llm_api.text("never delivered", delay=30.0))
    send(client, project_a, text_update(111, "Are you there?"))
    fake_llm.wait_for("openai", 1, timeout=30)
    celery_worker.kill()

    fake_llm.reset()
    fake_llm.openai.push(llm_api.text("Yes, I am here."))
    # The lease of the dead worker's generation runs out (10 s); beat's sweep gives it back.
    assert dead_worker_leases_recovered() > 0
    celery_worker.start()
    generations_process_due_task.delay()
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    time.sleep(1.5)

    assert replies(fake_telegram, project_a, 111) == ["Yes, I am here."]
    assert Message.objects.get(text="Are you there?").turn.status == "sent"
    assert Turn.objects.count() == 1


def test_llm_rate_limit_then_success_gives_the_reply(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    fake_llm.openai.push(llm_api.error(429, retry_after=0), llm_api.text("After the rate limit"))
    send(client, project_a, text_update(111, "Hello"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    assert replies(fake_telegram, project_a, 111) == ["After the rate limit"]
    assert len(fake_llm.requests_to("openai")) == 2


def test_a_dead_primary_backend_falls_through_to_the_second(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    project_a.model_toolcaller = "anthropic/claude-test,openai/gpt-test"
    project_a.save()
    fake_llm.fail_all("anthropic", 529, retry_after=0)
    fake_llm.openai.push(llm_api.text("The backup model answers"))
    send(client, project_a, text_update(111, "Hello"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    assert replies(fake_telegram, project_a, 111) == ["The backup model answers"]
    assert len(fake_llm.requests_to("anthropic")) == 3


def test_all_backends_dead_gives_a_polite_error_and_a_failed_generation(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_llm.fail_all("openai", 503, retry_after=0)
    send(client, project_a, text_update(111, "Hello"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    [apology] = replies(fake_telegram, project_a, 111)
    assert "cannot answer right now" in apology
    wait_until(lambda: Generation.objects.filter(status="failed").exists(), what="failed generation")
    message = Message.objects.get(text="Hello")
    assert message.turn is not None  # answered (with the apology), kept in the history


def test_telegram_429_is_honoured_and_a_blocked_user_is_marked_and_not_retried(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1)
    fake_llm.openai.push(llm_api.text("Delivered after waiting"))
    send(client, project_a, text_update(111, "Hello"))
    fake_telegram.wait_for("sendMessage", count=2, token=project_a.bot_token, timeout=30)
    attempts = fake_telegram.calls_to("sendMessage", token=project_a.bot_token)
    assert [c.failed_status for c in attempts] == [429, None]
    assert attempts[1].at - attempts[0].at >= 0.9

    fake_telegram.block_chat(project_a.bot_token, 333)
    fake_llm.openai.push(llm_api.text("You will never see this"), llm_api.text("Nor this"))
    send(client, project_a, text_update(333, "Hi"))
    wait_until(lambda: Chat.objects.filter(telegram_chat_id=333, blocked_at__isnull=False).exists(),
               what="chat marked blocked", worker=celery_worker)  # fmt: skip
    send(client, project_a, text_update(333, "Hi again"))
    time.sleep(2.0)
    blocked_sends = [c for c in fake_telegram.calls_to("sendMessage") if c.params.get("chat_id") == 333]
    assert len(blocked_sends) == 1
    assert len(fake_llm.requests_to("openai")) == 2  # the second message never reached the model


def test_a_file_without_text_is_acknowledged_without_the_model(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    send(client, project_a, photo_update(111))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    assert "Got it" in replies(fake_telegram, project_a, 111)[0]
    assert not fake_llm.requests_to("openai")
    assert Chat.objects.get(telegram_chat_id=111).state["files"][0]["kind"] == "photo"


def test_start_resets_and_greets_and_debug_toggles_trace(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    send(client, project_a, text_update(111, "/start"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    send(client, project_a, text_update(111, "/debug"))
    fake_telegram.wait_for("sendMessage", count=2, token=project_a.bot_token, timeout=30)
    fake_llm.openai.push(llm_api.text("Traced answer"))
    send(client, project_a, text_update(111, "Question"))
    fake_telegram.wait_for("sendMessage", count=3, token=project_a.bot_token, timeout=30)
    greeting, debug_on, answer = replies(fake_telegram, project_a, 111)
    assert greeting == "Hello from the test bot!"
    assert "Debug mode is on" in debug_on
    assert answer.startswith("Traced answer\n\n[debug] model openai/")
    assert "1 round-trip(s)" in answer
