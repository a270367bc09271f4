"""A reply Telegram refuses for longer than the retry budget (a 429 storm) is delivered later by the sweep,
once, and only the parts that had not arrived yet; a button press whose task was lost is re-enqueued.
In-process: the engine, the fake Telegram and fake LLM."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bots import tasks as bot_tasks
from bots import telegram_outbox
from bots.callbacks import callback_process
from bots.chat_processing import chat_process
from bots.conversation import DELIVERY_GIVE_UP_AFTER
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.models import Chat, TelegramUpdate, Turn
from bots.tasks import PRESS_GIVE_UP_AFTER
from tests.fakes import llm_api
from tests.matching.dialogue import callback_update
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch, fake_telegram, project_a, project_b):
    waits: list[float] = []
    monkeypatch.setattr(telegram_outbox, "sleep", waits.append)
    monkeypatch.setattr(bot_tasks, "STALE_AFTER", timedelta(0))
    monkeypatch.setattr(bot_tasks.generations_process_due_task, "delay", lambda: None)
    monkeypatch.setattr(bot_tasks.chat_process_task, "delay", lambda chat_id, swept=False: None)
    for project in (project_a, project_b):
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    return waits


def say(project, chat_id: int, text: str) -> Chat:
    chat = Chat.objects.get(pk=update_receive(project=project, payload=text_update(chat_id, text)).chat_id)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


def delivered(fake_telegram, project, chat_id: int) -> list[str]:
    return [c.params["text"] for c in fake_telegram.calls_to("sendMessage", token=project.bot_token)
            if c.ok and c.params["chat_id"] == chat_id]  # fmt: skip


def sweep_and_run(chat: Chat) -> None:
    bot_tasks.engine_sweep()
    generations_process_due(chat=chat)


def test_a_reply_refused_past_the_retry_budget_is_delivered_by_the_sweep(project_a, project_b, fake_telegram,
                                                                         fake_llm):  # fmt: skip
    fake_llm.openai.push(llm_api.text("Here are our prices."))
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=4, token=project_a.bot_token)
    chat = say(project_a, 111, "Prices?")

    turn = Turn.objects.get(chat=chat)
    assert turn.status == Turn.Status.REPLY_READY  # kept for later, not failed
    assert "rate limited" in turn.error
    assert delivered(fake_telegram, project_a, 111) == []

    sweep_and_run(chat)
    sweep_and_run(chat)  # a second sweep finds nothing left to do
    assert delivered(fake_telegram, project_a, 111) == ["Here are our prices."]
    turn.refresh_from_db()
    assert turn.status == Turn.Status.SENT
    assert len(fake_llm.requests_to("openai")) == 1  # the stored reply was sent; the model was not asked again
    assert not fake_telegram.calls_to("sendMessage", token=project_b.bot_token)


def test_only_the_parts_that_did_not_arrive_are_sent_again(project_a, fake_telegram, fake_llm):
    first, second = "A" * 3000, "B" * 3000
    fake_llm.openai.push(llm_api.text(f"{first}\n\n{second}"))
    # The first part goes through; the second is refused through the whole retry budget.
    fake_telegram.delay_next("sendMessage", 0.0, token=project_a.bot_token)
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=4, token=project_a.bot_token)
    chat = say(project_a, 111, "Tell me everything")

    assert delivered(fake_telegram, project_a, 111) == [first]
    sweep_and_run(chat)
    assert delivered(fake_telegram, project_a, 111) == [first, second]
    turn = Turn.objects.get(chat=chat)
    assert (turn.status, len(turn.sent_message_ids)) == (Turn.Status.SENT, 2)


def test_a_reply_refused_for_too_long_is_given_up_loudly(project_a, fake_telegram, fake_llm, caplog):
    fake_llm.openai.push(llm_api.text("Too late."))
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=4, token=project_a.bot_token)
    chat = say(project_a, 111, "Hello?")
    Turn.objects.filter(chat=chat).update(created_at=timezone.now() - DELIVERY_GIVE_UP_AFTER - timedelta(minutes=1))
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=4, token=project_a.bot_token)

    sweep_and_run(chat)
    turn = Turn.objects.get(chat=chat)
    assert turn.status == Turn.Status.FAILED
    assert delivered(fake_telegram, project_a, 111) == []
    assert any("given up" in record.getMessage() and record.levelname == "ERROR" for record in caplog.records)


def test_the_sweep_re_enqueues_unapplied_button_presses_for_an_hour(project_a, monkeypatch, fake_telegram):
    enqueued: list[int] = []
    monkeypatch.setattr(bot_tasks.callback_process_task, "delay", lambda update_id, swept: enqueued.append(update_id))
    say(project_a, 111, "Hello")  # the chat exists
    fresh, old, applied = (
        update_receive(project=project_a, payload=callback_update(111, f"menu:{n}")).callback_update_id
        for n in range(3)
    )
    TelegramUpdate.objects.filter(pk=old).update(received_at=timezone.now() - PRESS_GIVE_UP_AFTER - timedelta(1))
    callback_process(update_id=applied)

    bot_tasks.engine_sweep()
    assert enqueued == [fresh]
    callback_process(update_id=fresh)
    callback_process(update_id=fresh)  # a late duplicate task changes nothing and answers nothing
    assert len(fake_telegram.calls_to("answerCallbackQuery", token=project_a.bot_token)) == 2
    enqueued.clear()
    bot_tasks.engine_sweep()
    assert enqueued == []
