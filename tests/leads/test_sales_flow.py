"""The sales bot end to end: real worker, fake LLM, fake Telegram, a crawled local site."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from bots.models import Chat, Generation, Turn
from bots.tasks import generations_process_due_task
from knowledge.models import CrawlJob
from knowledge.services import crawl_request
from leads.followups import followups_fire_due
from leads.models import FollowUp, Lead
from leads.services import leads_retry_unsent
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

LEAD_GROUP = -100500
OTHER_GROUP = -100600


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))


@pytest.fixture
def shop(project_a, project_b, fake_telegram, local_site, celery_worker):
    """Project A sells cleaning with a crawled site and a lead group; project B has its own group."""
    for project, group in ((project_a, LEAD_GROUP), (project_b, OTHER_GROUP)):
        project.lead_group_id = group
        project.followup_steps = [60, 120, 180]
        project.quiet_hours_start = project.quiet_hours_end = None
        project.save()
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    job = crawl_request(project=project_a, urls=[local_site.url("en/prices.html"), local_site.url("en/hours.html")])
    wait_until(lambda: CrawlJob.objects.get(pk=job.pk).status == "done", 60, "crawl", celery_worker)
    return project_a


def say(client: Client, project, chat_id: int, text: str) -> None:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(text_update(chat_id, text)),
        content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200


def to_chat(fake_telegram, project, chat_id: int, method: str = "sendMessage") -> list:
    return [
        c for c in fake_telegram.calls_to(method, token=project.bot_token) if c.ok and c.params["chat_id"] == chat_id
    ]


def test_a_price_question_is_answered_from_the_crawled_site(client, shop, fake_telegram, fake_llm, celery_worker):
    fake_llm.openai.push(
        llm_api.tool_call("hybrid_search", {"query": "window washing price"}),
        llm_api.text("Window washing costs 7 dollars per window."),
    )
    say(client, shop, 11, "How much do you charge to wash windows?")
    wait_until(lambda: to_chat(fake_telegram, shop, 11), what="reply", worker=celery_worker)

    first, second = (request.body for request in fake_llm.requests_to("openai"))
    assert "hybrid_search" in [tool["function"]["name"] for tool in first["tools"]]
    tool_result = second["messages"][-1]
    assert tool_result["role"] == "tool"
    assert "7 dollars per window" in tool_result["content"]
    assert "en/prices.html" in tool_result["content"]
    assert to_chat(fake_telegram, shop, 11)[0].params["text"] == "Window washing costs 7 dollars per window."


def test_a_customer_with_a_phone_number_becomes_exactly_one_living_lead(
    client, shop, fake_telegram, fake_llm, celery_worker
):
    fake_llm.openai.push(
        llm_api.tool_call(
            "set_state", {"notes": "name: Anna\ncontact: +1 555 0100\nservice: windows", "client_status": "hot"}
        ),
        llm_api.tool_call("send_lead", {"summary": "Anna wants her windows washed this week."}),
        llm_api.text("Thank you, Anna! A manager will call you today."),
    )
    say(client, shop, 22, "I'm Anna, please call me at +1 555 0100 about windows")
    wait_until(lambda: Lead.objects.filter(status="sent").exists(), what="lead sent", worker=celery_worker)

    [lead] = Lead.objects.all()
    assert (lead.name, lead.contact, lead.client_status) == ("Anna", "+1 555 0100", "hot")
    [summary] = to_chat(fake_telegram, shop, LEAD_GROUP)
    assert f"#{lead.pk}" in summary.params["text"]
    assert "Anna wants her windows washed" in summary.params["text"]
    [forward] = fake_telegram.calls_to("forwardMessage", token=shop.bot_token)
    assert forward.params["chat_id"] == LEAD_GROUP
    assert forward.params["from_chat_id"] == 22
    [transcript] = to_chat(fake_telegram, shop, LEAD_GROUP, "sendDocument")
    [document] = transcript.files.values()
    assert document.filename == f"lead{lead.pk}.txt"
    assert "please call me at +1 555 0100" in document.content.decode()

    for index in range(6):  # the customer keeps writing after the lead went out
        say(client, shop, 22, f"One more detail #{index}")
        wait_until(lambda i=index: len(to_chat(fake_telegram, shop, 22)) == i + 2, what=f"ack {index}")
    wait_until(lambda: len(fake_telegram.calls_to("editMessageMedia", token=shop.bot_token)) == 5, what="refresh")
    time.sleep(1.5)
    assert len(fake_telegram.calls_to("editMessageMedia", token=shop.bot_token)) == 5  # the sixth does not refresh
    edits = fake_telegram.calls_to("editMessageText", token=shop.bot_token)
    assert all(edit.params["chat_id"] == LEAD_GROUP for edit in edits)
    assert "history updated" in edits[-1].params["text"]
    assert Lead.objects.count() == 1
    assert len(to_chat(fake_telegram, shop, LEAD_GROUP)) == 1  # never a second summary
    assert len(fake_llm.requests_to("openai")) == 3  # the acknowledgements needed no model


def test_a_crash_between_finished_and_sent_ends_with_exactly_one_delivered_lead(
    client, shop, fake_telegram, fake_llm, celery_worker
):
    fake_llm.openai.push(llm_api.text("Hello!"))
    say(client, shop, 33, "hi")
    wait_until(lambda: to_chat(fake_telegram, shop, 33), what="greeting reply")
    chat = Chat.objects.get(telegram_chat_id=33)
    # Phase one persisted, then the process died before dispatching:
    lead = Lead.objects.create(project=shop, chat=chat, summary="Crashed before sending", status="finished")
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    chat.state["lead_id"] = lead.pk
    chat.save()

    def sweep() -> None:
        leads_retry_unsent()
        connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    from leads.tasks import lead_dispatch_task

    lead_dispatch_task.delay(lead.pk)  # and a redelivered task on the worker
    wait_until(lambda: Lead.objects.get(pk=lead.pk).status == "sent", what="sent")
    time.sleep(1.5)
    summaries = [c for c in to_chat(fake_telegram, shop, LEAD_GROUP) if "Crashed before sending" in c.params["text"]]
    assert len(summaries) == 1


def test_a_silent_customer_gets_nudges_and_the_last_step_dispatches_with_a_summary(
    client, shop, fake_telegram, fake_llm, celery_worker
):
    fake_llm.openai.push(llm_api.text("We wash windows for 7 dollars each. Shall I book you?"))
    say(client, shop, 44, "Do you wash windows? I'm Boris, +1 555 0199")
    wait_until(lambda: to_chat(fake_telegram, shop, 44), what="first reply")
    wait_until(lambda: FollowUp.objects.filter(chat__telegram_chat_id=44, fire_at__isnull=False).exists())

    def fire_next_step(expected_messages: int | None) -> None:
        # A step due while a turn still runs is postponed (by design), so let the last turn finish first.
        wait_until(lambda: not Generation.objects.filter(chat__telegram_chat_id=44, status__in=Generation.ACTIVE)
                   .exists(), what="previous turn finished")  # fmt: skip
        follow_up = FollowUp.objects.get(chat__telegram_chat_id=44)
        assert followups_fire_due(now=follow_up.fire_at + timedelta(seconds=1)) == 1
        generations_process_due_task.delay()
        if expected_messages is not None:
            wait_until(lambda: len(to_chat(fake_telegram, shop, 44)) == expected_messages, what="nudge")

    fake_llm.openai.push(llm_api.text("Just checking in: would Thursday suit you?"))
    fire_next_step(2)
    celery_worker.kill()  # a restart between steps changes nothing: the timers are rows
    celery_worker.start()
    fake_llm.openai.push(llm_api.text(""))  # the agent chooses silence
    fire_next_step(None)
    wait_until(lambda: Turn.objects.filter(chat__telegram_chat_id=44, status="silent").exists(), what="silence")
    fake_llm.openai.push(llm_api.text(""), llm_api.text("Boris wants windows washed; call +1 555 0199."))
    fire_next_step(None)

    wait_until(lambda: Lead.objects.filter(status="sent").exists(), what="timer lead", worker=celery_worker)
    [lead] = Lead.objects.all()
    assert lead.source == "timer"
    assert lead.summary == "Boris wants windows washed; call +1 555 0199."
    assert len(to_chat(fake_telegram, shop, 44)) == 2  # first reply + one nudge; silence sends nothing
    timer_requests = [r for r in fake_llm.requests_to("openai") if "[TIMER PING]" in json.dumps(r.body)]
    assert len(timer_requests) >= 3
    assert not FollowUp.objects.filter(chat__telegram_chat_id=44, fire_at__isnull=False).exists()


def test_leads_go_only_to_their_own_projects_group(client, shop, project_b, fake_telegram, fake_llm, celery_worker):
    fake_llm.openai.push(
        llm_api.tool_call("send_lead", {"summary": "Beta customer"}),
        llm_api.text("Спасибо!"),
    )
    say(client, project_b, 55, "Позвоните мне, +7 900 000-00-00")
    wait_until(lambda: Lead.objects.filter(project=project_b, status="sent").exists(), what="beta lead")
    assert to_chat(fake_telegram, project_b, OTHER_GROUP)
    assert not to_chat(fake_telegram, shop, LEAD_GROUP)
    assert not [c for c in fake_telegram.calls if c.params.get("chat_id") == LEAD_GROUP]
