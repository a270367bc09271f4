"""Human takeover: the bot stays silent and its timers do not fire; operator replies go through the bot."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from bots.models import Generation, Message, Turn
from bots.takeover import TakeoverRefused, chat_hand_back, chat_operator_reply, chat_take_over
from leads.followups import followups_fire_due
from leads.models import FollowUp
from tenants.models import Membership
from tests.console.conversation import say, texts_to
from tests.factories import MembershipFactory
from tests.fakes import llm_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def bots(project_a, project_b, fake_telegram):
    for project in (project_a, project_b):
        project.quiet_hours_start = project.quiet_hours_end = None
        project.save()
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    return project_a, project_b


def test_a_taken_over_chat_gets_no_bot_reply_and_no_timer_until_handed_back(bots, fake_telegram, fake_llm):
    alpha, beta = bots
    fake_llm.openai.push(llm_api.text("Hello, how can I help?"))
    chat = say(alpha, 11, "Hi")
    assert texts_to(fake_telegram, alpha, 11) == ["Hello, how can I help?"]

    assert chat_take_over(chat=chat, operator="olga")
    assert not chat_take_over(chat=chat, operator="olga")  # a second press changes nothing
    llm_calls_before = len(fake_llm.requests)
    say(alpha, 11, "Can I talk to a human?")
    # The same Telegram user in another project is not affected by this project's takeover.
    fake_llm.openai.push(llm_api.text("Beta answers"))
    say(beta, 11, "Hello beta")
    assert texts_to(fake_telegram, beta, 11) == ["Beta answers"]
    assert len(fake_llm.requests) == llm_calls_before + 1  # only beta's turn reached the model
    assert texts_to(fake_telegram, alpha, 11) == ["Hello, how can I help?"]
    assert not Generation.objects.filter(chat=chat, status="pending").exists()

    follow_up = FollowUp.objects.get(chat=chat)
    FollowUp.objects.filter(pk=follow_up.pk).update(fire_at=timezone.now() - timedelta(seconds=1))
    assert followups_fire_due() == 0  # paused: the timer does not fire
    assert not Generation.objects.filter(chat=chat, kind=Generation.Kind.TIMER_TURN).exists()

    turn = chat_operator_reply(chat=chat, text="Olga here, a human. How can I help?", operator="olga")
    assert turn.status == Turn.Status.SENT
    assert turn.trigger == Turn.Trigger.OPERATOR
    assert texts_to(fake_telegram, alpha, 11)[-1] == "Olga here, a human. How can I help?"
    assert list(Message.objects.filter(turn=turn).values_list("text", flat=True)) == ["Can I talk to a human?"]

    assert chat_hand_back(chat=chat, operator="olga")
    fake_llm.openai.push(llm_api.text("Glad Olga could help!"))
    say(alpha, 11, "Thanks")
    assert texts_to(fake_telegram, alpha, 11)[-1] == "Glad Olga could help!"
    # The model sees the operator's words as the assistant's part of the conversation.
    last_request = fake_llm.requests_to("openai")[-1].body
    assert {"role": "assistant", "content": "Olga here, a human. How can I help?"} in [
        {"role": m["role"], "content": m.get("content")} for m in last_request["messages"]
    ]


def test_hand_back_lets_the_bot_answer_what_came_in_meanwhile(bots, django_capture_on_commit_callbacks):
    alpha, _ = bots
    chat = say(alpha, 12, "hello")  # no model reply scripted: the apology does not matter here
    chat_take_over(chat=chat, operator="olga")
    say(alpha, 12, "are you there?")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        chat_hand_back(chat=chat, operator="olga")
    assert len(queued) == 1  # the chat goes back to the worker, which answers the waiting message


def test_operator_replies_are_refused_with_a_reason_and_send_nothing(bots, fake_telegram):
    alpha, _ = bots
    chat = say(alpha, 13, "hello")
    sent_before = len(fake_telegram.calls_to("sendMessage"))
    with pytest.raises(TakeoverRefused, match="take the chat over first"):
        chat_operator_reply(chat=chat, text="hi", operator="olga")
    chat_take_over(chat=chat, operator="olga")
    with pytest.raises(TakeoverRefused, match="empty"):
        chat_operator_reply(chat=chat, text="   ", operator="olga")
    chat.blocked_at = timezone.now()
    chat.save()
    with pytest.raises(TakeoverRefused, match="blocked"):
        chat_operator_reply(chat=chat, text="hi", operator="olga")
    assert len(fake_telegram.calls_to("sendMessage")) == sent_before
    assert not Turn.objects.filter(chat=chat, trigger=Turn.Trigger.OPERATOR).exists()


def test_the_transcript_page_takes_over_replies_and_records_each_step(client, bots, fake_telegram, fake_llm):
    alpha, _ = bots
    fake_llm.openai.push(llm_api.tool_call("get_state", {}), llm_api.text("Let me check that."))
    chat = say(alpha, 14, "Where is my order?")
    operator = MembershipFactory(project=alpha, role=Membership.Role.OPERATOR).user
    client.force_login(operator)
    page = client.get(reverse("admin:bots_chat_change", args=[chat.pk])).content.decode()
    assert "Where is my order?" in page
    assert "Let me check that." in page
    assert "get_state" in page  # the turn's tool call is shown with its result
    assert "Take over (pause the bot)" in page

    takeover = reverse("admin:bots_chat_takeover", args=[chat.pk])
    client.post(takeover, {"do": "take_over"})
    client.post(takeover, {"do": "reply", "text": "A person will call you."})
    client.post(takeover, {"do": "reply", "text": ""})
    client.post(takeover, {"do": "hand_back"})

    assert texts_to(fake_telegram, alpha, 14)[-1] == "A person will call you."
    chat.refresh_from_db()
    assert chat.paused_at is None
    log = list(LogEntry.objects.filter(object_id=str(chat.pk)).order_by("pk").values_list("change_message", flat=True))
    assert log[0] == "Took the chat over: the bot is paused"
    assert log[1].startswith("Operator reply (turn ")
    assert log[-1] == "Handed the chat back to the bot"
    page = client.get(reverse("admin:bots_chat_change", args=[chat.pk])).content.decode()
    assert "A person will call you." in page
