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
