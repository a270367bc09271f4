"""A follow-up turn run again after a crash (its lease ran out) sends its nudge once."""

import pytest
from django.utils import timezone

from bots.models import Chat, Generation, Turn
from leads.followups import timer_turn_handle
from tests.fakes import llm_api

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_follow_up_run_again_after_a_crash_asks_the_model_and_sends_once(project_a, fake_telegram, fake_llm):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    project_a.followup_steps = [300, 900]
    project_a.save()
    chat = Chat.objects.create(project=project_a, telegram_chat_id=61, user_id=61)
    generation = Generation.objects.create(
        project=project_a, chat=chat, kind=Generation.Kind.TIMER_TURN, target_id=0,
        scheduled_for=timezone.now(), status=Generation.Status.RUNNING, attempts=1,
    )  # fmt: skip
    fake_llm.openai.push(llm_api.text("Still thinking about the windows?"))

    timer_turn_handle(generation)
    # The worker died before it recorded the generation as done: the next worker runs it again.
    timer_turn_handle(generation)

    sent = [c.params["text"] for c in fake_telegram.calls_to("sendMessage", token=project_a.bot_token) if c.ok]
    assert sent == ["Still thinking about the windows?"]
    assert len(fake_llm.requests_to("openai")) == 1
    [turn] = Turn.objects.filter(chat=chat)
    assert (turn.trigger, turn.status) == (Turn.Trigger.TIMER, Turn.Status.SENT)


def _timer_generation(project, chat_id: int) -> Generation:
    project.followup_steps = [300, 900]
    project.save()
    chat = Chat.objects.create(project=project, telegram_chat_id=chat_id, user_id=chat_id)
    return Generation.objects.create(
        project=project, chat=chat, kind=Generation.Kind.TIMER_TURN, target_id=0,
        scheduled_for=timezone.now(), status=Generation.Status.RUNNING, attempts=1,
    )  # fmt: skip


def _nudge_stored(generation: Generation, status: str) -> None:
    Turn.objects.create(
        project=generation.project, chat=generation.chat, generation=generation, trigger=Turn.Trigger.TIMER,
        user_text="[TIMER PING] step 1 of 2", reply="Shall I book Thursday?", status=status,
    )  # fmt: skip


def test_a_follow_up_whose_nudge_was_composed_sends_it_without_asking_the_model_again(
    project_a, fake_telegram, fake_llm
):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    generation = _timer_generation(project_a, 62)
    _nudge_stored(generation, Turn.Status.REPLY_READY)  # the worker died after the model answered, before sending

    timer_turn_handle(generation)

    sent = [c.params["text"] for c in fake_telegram.calls_to("sendMessage", token=project_a.bot_token) if c.ok]
    assert sent == ["Shall I book Thursday?"]
    assert fake_llm.requests_to("openai") == []
    assert Turn.objects.get(generation=generation).status == Turn.Status.SENT


def test_a_follow_up_that_died_while_sending_is_never_resent_nor_asked_again(project_a, fake_telegram, fake_llm):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    generation = _timer_generation(project_a, 63)
    _nudge_stored(generation, Turn.Status.SENDING)  # the worker died during sendMessage: it may have arrived

    timer_turn_handle(generation)

    assert fake_telegram.calls_to("sendMessage", token=project_a.bot_token) == []
    assert fake_llm.requests_to("openai") == []
    assert Turn.objects.get(generation=generation).status == Turn.Status.SEND_UNKNOWN
