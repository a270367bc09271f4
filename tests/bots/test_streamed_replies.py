"""Streamed replies end to end: webhook -> real Celery worker -> streaming fake LLM -> drafts, then one reply."""

import itertools
import time

import pytest

from bots.generations import generations_recover_expired_leases
from bots.models import LLMCall, Message, Turn
from bots.reply_drafts import DRAFT_INTERVAL_SECONDS
from bots.tasks import generations_process_due_task
from tests.bots.test_engine_integration import replies, send, wait_until
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = (
    "Window cleaning costs 30 EUR per hour, materials included. We come on weekdays between 8 and 18, and a "
    "typical flat takes about two hours. Shall I book you in?"
)


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    return project_a, project_b


def test_a_streamed_answer_shows_drafts_then_is_sent_once_with_the_full_text(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, project_b = bots
    fake_llm.openai.push(llm_api.streamed(ANSWER, first_token_after=0.5, total=3.0, prompt_tokens=200,
                                          completion_tokens=40))  # fmt: skip
    send(client, project_a, text_update(111, "How much is window cleaning?"))
    [reply] = fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    time.sleep(1.0)  # nothing more may follow

    turn = Turn.objects.get(chat__telegram_chat_id=111)
    drafts = fake_telegram.drafts(token=project_a.bot_token, chat_id=111)
    assert len(drafts) >= 2
    texts = [d.params["text"] for d in drafts]
    assert all(ANSWER.startswith(t) and t for t in texts)
    assert len(set(texts)) == len(texts)
    assert len(texts[0]) < len(texts[-1])
    assert {d.params["draft_id"] for d in drafts} == {turn.pk}
    gaps = [b.at - a.at for a, b in itertools.pairwise(drafts)]
    assert min(gaps) >= DRAFT_INTERVAL_SECONDS - 0.05  # throttled: at most one update per 0.5 s
    assert drafts[-1].at <= reply.at  # every preview before the reply, none after it
    # The reply itself: one ordinary sendMessage with the whole text, in the right chat of the right bot.
    assert replies(fake_telegram, project_a, 111) == [ANSWER]
    assert len(fake_telegram.calls_to("sendMessage")) == 1
    assert not fake_telegram.drafts(token=project_b.bot_token)
    assert (turn.status, turn.reply) == ("sent", ANSWER)
    [request] = fake_llm.requests_to("openai")
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    [call] = LLMCall.objects.filter(project=project_a)
    assert (call.tokens_in, call.tokens_out) == (200, 40)  # usage from the stream's last chunk


def test_tool_rounds_then_a_streamed_answer(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    fake_llm.openai.push(
        llm_api.tool_call("set_state", {"notes": "asks about windows"}),
        llm_api.streamed(ANSWER, first_token_after=0.2, total=2.0),
    )
    send(client, project_a, text_update(111, "How much is window cleaning?"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    time.sleep(0.5)

    assert replies(fake_telegram, project_a, 111) == [ANSWER]
    assert len(fake_telegram.drafts(token=project_a.bot_token, chat_id=111)) >= 2
    turn = Turn.objects.get(chat__telegram_chat_id=111)
    assert turn.chat.state.get("notes") == "asks about windows"  # the streamed tool call was assembled and ran
    assert [b["type"] for m in turn.blocks for b in m["blocks"]] == ["tool_use", "tool_result", "text"]


def test_without_drafts_on_the_server_the_reply_still_goes_once(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    fake_telegram.fail_next("sendMessageDraft", status=404, description="Not Found: method not found", times=100)
    fake_llm.openai.push(
        llm_api.streamed(ANSWER, first_token_after=0.2, total=1.5),
        llm_api.streamed("Second answer, also whole.", first_token_after=0.2, total=1.0),
    )
    send(client, project_a, text_update(111, "How much is window cleaning?"))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    send(client, project_a, text_update(111, "And on Sundays?"))
    fake_telegram.wait_for("sendMessage", count=2, token=project_a.bot_token, timeout=30)
    time.sleep(0.5)

    assert replies(fake_telegram, project_a, 111) == [ANSWER, "Second answer, also whole."]
    # One refused draft switches drafts off for this bot in the worker: the next turn does not try.
    assert len(fake_telegram.calls_to("sendMessageDraft", token=project_a.bot_token)) == 1


def test_a_worker_killed_mid_stream_leaves_no_half_reply_and_answers_once(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_llm.openai.push(llm_api.streamed("never " * 40 + "finished", first_token_after=0.2, total=30.0))
    send(client, project_a, text_update(111, "Are you there?"))
    wait_until(lambda: len(fake_telegram.drafts(token=project_a.bot_token)) >= 2, what="drafts", worker=celery_worker)
    celery_worker.kill()
    assert not fake_telegram.calls_to("sendMessage")  # the half answer was only ever a preview

    fake_llm.reset()
    fake_llm.openai.push(llm_api.streamed("Yes, I am here.", first_token_after=0.2, total=1.0))
    celery_worker.start()
    wait_until(lambda: generations_recover_expired_leases() > 0, timeout=20, what="lease expiry")
    generations_process_due_task.delay()
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    time.sleep(1.5)

    assert replies(fake_telegram, project_a, 111) == ["Yes, I am here."]
    assert Message.objects.get(text="Are you there?").turn.status == "sent"
    assert Turn.objects.count() == 1
