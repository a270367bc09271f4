"""Streamed replies end to end: webhook -> real Celery worker -> streaming fake LLM -> drafts, then one reply."""

import itertools
import time

import pytest

from bots.models import LLMCall, Message, Turn
from bots.reply_drafts import DRAFT_INTERVAL_SECONDS
from bots.reply_edits import EDIT_INTERVAL_SECONDS, UNFINISHED
from bots.tasks import generations_process_due_task
from tests.bots.test_engine_integration import replies, send, wait_until
from tests.fakes import llm_api
from tests.infrastructure import dead_worker_leases_recovered
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = (
    "Window cleaning costs 30 EUR per hour, materials included. We come on weekdays between 8 and 18, and a "
    "typical flat takes about two hours. Shall I book you in?"
)


def chat_texts(fake_telegram, project, chat_id: int) -> list[str]:
    """What the chat shows now: the bot's messages, edited and not deleted."""
    return [m["text"] for m in fake_telegram.chat_messages(project.bot_token, chat_id)]


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


def test_without_drafts_on_the_server_the_answer_streams_by_edits_and_the_reply_goes_once(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, project_b = bots
    fake_telegram.fail_next("sendMessageDraft", status=404, description="Not Found: method not found", times=100)
    fake_llm.openai.push(
        llm_api.streamed(ANSWER, first_token_after=0.2, total=4.0),
        llm_api.streamed("Second answer, also whole.", first_token_after=0.2, total=1.0),
    )
    send(client, project_a, text_update(111, "How much is window cleaning?"))
    wait_until(lambda: len(fake_telegram.calls_to("deleteMessage")) == 1, what="the preview deleted")
    send(client, project_a, text_update(111, "And on Sundays?"))
    wait_until(lambda: len(fake_telegram.calls_to("deleteMessage")) == 2, what="the second preview deleted")
    time.sleep(0.5)

    # What the chat shows: the two complete replies, each once; the previews are gone.
    assert chat_texts(fake_telegram, project_a, 111) == [ANSWER, "Second answer, also whole."]
    sent = fake_telegram.calls_to("sendMessage", token=project_a.bot_token)
    previews = [c for c in sent if c.params.get("disable_notification")]
    assert [c.params["text"] for c in sent if c not in previews] == [ANSWER, "Second answer, also whole."]
    assert len(previews) == 2  # one silent preview message per turn
    first_preview = previews[0].result["message_id"]
    edits = [c for c in fake_telegram.calls_to("editMessageText") if c.params["message_id"] == first_preview]
    assert edits  # the first answer grew in its preview
    assert all(ANSWER.startswith(c.params["text"].removesuffix(UNFINISHED)) for c in [previews[0], *edits])
    assert all(b.at - a.at >= EDIT_INTERVAL_SECONDS - 0.05 for a, b in itertools.pairwise([previews[0], *edits]))
    assert [c.params["message_id"] for c in fake_telegram.calls_to("deleteMessage")] == [
        p.result["message_id"] for p in previews
    ]
    # One refused draft switches drafts off for this bot in the worker: the next turn does not try.
    assert len(fake_telegram.calls_to("sendMessageDraft", token=project_a.bot_token)) == 1
    assert not fake_telegram.calls_to("sendMessage", token=project_b.bot_token)
    assert set(Turn.objects.values_list("status", "preview_message_id")) == {("sent", None)}


def test_a_worker_killed_while_streaming_by_edits_still_leaves_exactly_one_complete_reply(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_telegram.fail_next("sendMessageDraft", status=404, description="Not Found: method not found", times=100)
    fake_llm.openai.push(llm_api.streamed("never " * 40 + "finished", first_token_after=0.2, total=30.0))
    send(client, project_a, text_update(111, "Are you there?"))
    wait_until(lambda: fake_telegram.calls_to("editMessageText"), what="an edit", worker=celery_worker)
    celery_worker.kill()
    [half] = chat_texts(fake_telegram, project_a, 111)
    assert half.startswith("never")
    assert half.endswith(UNFINISHED)
    assert Turn.objects.get().preview_message_id is not None  # the turn knows its preview

    fake_llm.reset()
    fake_llm.openai.push(llm_api.streamed("Yes, I am here, and this answer is complete.", first_token_after=0.2,
                                          total=3.0))  # fmt: skip
    assert dead_worker_leases_recovered() > 0
    celery_worker.start()
    generations_process_due_task.delay()
    wait_until(lambda: fake_telegram.calls_to("deleteMessage"), what="the preview deleted", worker=celery_worker)
    time.sleep(1.5)

    assert chat_texts(fake_telegram, project_a, 111) == ["Yes, I am here, and this answer is complete."]
    sent = fake_telegram.calls_to("sendMessage", token=project_a.bot_token)
    assert [c.params.get("disable_notification") for c in sent] == [True, None]  # the recovered turn edited
    assert sent[1].params["text"] == "Yes, I am here, and this answer is complete."
    turn = Turn.objects.get()
    assert (turn.status, turn.preview_message_id) == ("sent", None)
    assert turn.sent_message_ids == [sent[1].result["message_id"]]


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
    assert dead_worker_leases_recovered() > 0
    celery_worker.start()
    generations_process_due_task.delay()
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=30)
    time.sleep(1.5)

    assert replies(fake_telegram, project_a, 111) == ["Yes, I am here."]
    assert Message.objects.get(text="Are you there?").turn.status == "sent"
    assert Turn.objects.count() == 1
