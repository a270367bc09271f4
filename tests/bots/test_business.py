"""Telegram Business end to end: webhook -> real Celery worker -> fake LLM -> fake Telegram, through a connection."""

import json

import pytest
from django.urls import reverse

from bots.business import business_pauses_end
from bots.gateway import normalize_update
from bots.models import BusinessConnection, Chat, Message, Turn
from bots.takeover import chat_hand_back, chat_take_over
from bots.telegram_outbox import PermanentSendError, call_with_policy, send_chat_action, send_text
from tenants.models import Membership
from tenants.project_settings import PROJECT_SETTINGS, SettingInvalid, setting_parse
from tests.bots.test_engine_integration import replies, wait_until
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.telegram_updates import (
    business_connection_update,
    business_message_update,
    deleted_business_messages_update,
    text_update,
    user,
    webhook_post,
)

pytestmark = pytest.mark.django_db(transaction=True)

OWNER = user(900, first_name="Olga", username="olga_shop")
CUSTOMER = 555


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    return project_a, project_b


def connect(client, fake_telegram, project, connection_id: str = "bc-1", **rights: bool) -> dict:
    """The owner connects the bot in Telegram; Telegram posts the business_connection update."""
    connection = fake_telegram.connect_business(project.bot_token, connection_id, owner=OWNER, **rights)
    webhook_post(client, project, business_connection_update(connection))
    return connection


def business_sends(fake_telegram, project, connection_id: str = "bc-1") -> list[str]:
    calls = fake_telegram.calls_to("sendMessage", token=project.bot_token)
    return [c.params["text"] for c in calls if c.ok and c.params.get("business_connection_id") == connection_id]


def calls_to_chat(fake_telegram, project, chat_id: int) -> list:
    return [c for c in fake_telegram.calls if c.token == project.bot_token and c.params.get("chat_id") == chat_id]


def control_reply(client, fake_telegram, project) -> None:
    """A private message to the bot answered after the business one: the worker has been through its queue."""
    before = len(replies(fake_telegram, project, 42))
    webhook_post(client, project, text_update(42, "control"))
    wait_until(lambda: len(replies(fake_telegram, project, 42)) > before, what="the control reply")


def test_a_connection_with_can_reply_answers_a_customer_through_it_on_every_call(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, project_b = bots
    connect(client, fake_telegram, project_a)
    stored = BusinessConnection.objects.get(project=project_a)
    assert (stored.connection_id, stored.user_id, stored.username, stored.may_reply) == ("bc-1", 900, "olga_shop", True)
    assert stored.rights == {"can_reply": True, "can_read_messages": True}
    assert stored.connected_at is not None

    fake_llm.openai.push(llm_api.text("Hello, we clean windows on Mondays.", delay=1.5))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Do you clean windows?"))
    wait_until(lambda: business_sends(fake_telegram, project_a), what="the business reply", worker=celery_worker)

    assert business_sends(fake_telegram, project_a) == ["Hello, we clean windows on Mondays."]
    assert fake_llm.requests_to("openai")[0].body["messages"][-1] == {
        "role": "user",
        "content": "Do you clean windows?",
    }
    sent = calls_to_chat(fake_telegram, project_a, CUSTOMER)
    assert "sendMessage" in {c.method for c in sent}  # and "typing..." when the model took long enough to show it
    assert all(c.params.get("business_connection_id") == "bc-1" for c in sent), [(c.method, c.params) for c in sent]
    assert not fake_telegram.calls_to("sendMessageDraft")  # drafts have no business_connection_id: never used here
    chat = Chat.objects.get(project=project_a, telegram_chat_id=CUSTOMER)
    assert (chat.business_connection_id, chat.first_name, chat.user_id) == ("bc-1", "Carl", CUSTOMER)
    # The worker records the send once Telegram's answer is back, a moment after the fake saw the request.
    wait_until(lambda: Turn.objects.get(chat=chat).status == "sent", what="the turn recorded as sent")

    # Another tenant never saw this connection: the same message there is kept, not answered.
    webhook_post(client, project_b, business_message_update("bc-1", CUSTOMER, "Do you clean windows?"))
    control_reply(client, fake_telegram, project_b)
    assert not business_sends(fake_telegram, project_b)
    assert not BusinessConnection.objects.get(project=project_b).may_reply  # an unconfirmed row, for the console


def test_a_business_chat_is_not_the_private_chat_with_the_same_user(client, bots, fake_telegram, fake_llm,
                                                                     celery_worker):  # fmt: skip
    project_a, _ = bots
    connect(client, fake_telegram, project_a)
    fake_llm.openai.push(llm_api.text("to the bot's own chat"))
    webhook_post(client, project_a, text_update(CUSTOMER, "Hi bot"))
    wait_until(lambda: replies(fake_telegram, project_a, CUSTOMER), what="the private reply")
    fake_llm.openai.push(llm_api.text("to the business chat"))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hi shop"))
    wait_until(lambda: business_sends(fake_telegram, project_a), what="the business reply")

    private = [c for c in fake_telegram.calls_to("sendMessage") if not c.params.get("business_connection_id")]
    assert [c.params["text"] for c in private] == ["to the bot's own chat"]
    assert business_sends(fake_telegram, project_a) == ["to the business chat"]
    chats = Chat.objects.filter(project=project_a, telegram_chat_id=CUSTOMER).order_by("pk")
    assert [c.business_connection_id for c in chats] == ["", "bc-1"]
    # The second conversation starts fresh: the business chat's model call does not see the private one.
    assert [m["content"] for m in fake_llm.requests_to("openai")[1].body["messages"][1:]] == ["Hi shop"]


def test_without_can_reply_the_bot_stays_silent(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    connect(client, fake_telegram, project_a, can_reply=False)
    assert not BusinessConnection.objects.get(project=project_a).may_reply
    fake_llm.openai.push(llm_api.text("control answer"))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Anyone there?"))
    control_reply(client, fake_telegram, project_a)

    assert not calls_to_chat(fake_telegram, project_a, CUSTOMER)  # no reply, not even "typing..."
    assert [r.body["messages"][-1]["content"] for r in fake_llm.requests_to("openai")] == ["control"]
    message = Message.objects.get(text="Anyone there?")  # kept in the chat's history for the operator
    assert (message.needs_reply, message.turn_id, message.chat.business_connection_id) == (False, None, "bc-1")


def test_the_owner_writing_pauses_the_bot_there_until_the_quiet_period_is_over(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    project_a.business_quiet_seconds = 5
    project_a.save()
    connect(client, fake_telegram, project_a)
    fake_llm.openai.push(llm_api.text("We are open until six."))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "When are you open?"))
    wait_until(lambda: business_sends(fake_telegram, project_a), what="the first reply")

    # The owner joins in from his phone.
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "I'll wait for you, Carl.",
                                                            sender=OWNER))  # fmt: skip
    chat = Chat.objects.get(project=project_a, telegram_chat_id=CUSTOMER)
    # The owner's words are not the customer's profile; his message is not a turn input.
    assert (chat.first_name, chat.paused_at is not None, chat.paused_until is not None) == ("Carl", True, True)
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Great, thanks!"))
    fake_llm.openai.push(llm_api.text("control answer"))
    control_reply(client, fake_telegram, project_a)
    assert business_sends(fake_telegram, project_a) == ["We are open until six."]  # paused: nothing more
    owner_turn = Turn.objects.get(chat=chat, trigger=Turn.Trigger.OWNER)
    assert (owner_turn.reply, owner_turn.status) == ("I'll wait for you, Carl.", "sent")
    assert Message.objects.get(text="Great, thanks!").turn_id is None

    # Nothing resumes before the quiet period is over; then the sweep hands the chat back to the bot.
    assert business_pauses_end() == 0
    # Queued before the resume: the worker may reach the model before this test's next line runs.
    fake_llm.openai.push(llm_api.text("You are welcome!"))
    wait_until(lambda: business_pauses_end() == 1, timeout=30, what="the end of the quiet period")
    wait_until(lambda: len(business_sends(fake_telegram, project_a)) == 2, what="the reply after the pause",
               worker=celery_worker)  # fmt: skip
    assert business_sends(fake_telegram, project_a)[-1] == "You are welcome!"
    last_request = fake_llm.requests_to("openai")[-1].body["messages"]
    assert last_request[-1] == {"role": "user", "content": "Great, thanks!"}
    assert {"role": "assistant", "content": "I'll wait for you, Carl."} in last_request  # the owner's words
    chat.refresh_from_db()
    assert (chat.paused_at, chat.paused_until) == (None, None)


def test_a_bot_message_echoed_back_changes_nothing(client, bots, fake_telegram):
    project_a, _ = bots
    connect(client, fake_telegram, project_a)
    echo = business_message_update(
        "bc-1",
        CUSTOMER,
        "our own reply",
        sender=OWNER,
        sender_business_bot=fake_telegram.register_bot(project_a.bot_token, "alpha_bot"),
    )
    webhook_post(client, project_a, echo)  # fmt: skip
    chat = Chat.objects.filter(project=project_a, telegram_chat_id=CUSTOMER).first()
    assert chat is None or chat.paused_at is None
    assert not Turn.objects.filter(trigger=Turn.Trigger.OWNER).exists()


def test_a_disabled_connection_stops_answering_even_a_reply_being_written(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    connect(client, fake_telegram, project_a)
    fake_llm.openai.push(llm_api.text("never sent", delay=3.0))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hello?"))
    fake_llm.wait_for("openai", 1, timeout=30)
    # The owner disconnects the bot while the model is still writing.
    connect(client, fake_telegram, project_a, is_enabled=False)
    assert not BusinessConnection.objects.get(project=project_a).is_enabled
    wait_until(lambda: Turn.objects.filter(status="failed").exists(), what="the refused turn", worker=celery_worker)

    turn = Turn.objects.get(status="failed")
    assert "disabled" in turn.error
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hello again?"))
    fake_llm.openai.push(llm_api.text("control answer"))
    control_reply(client, fake_telegram, project_a)
    assert not business_sends(fake_telegram, project_a)
    assert not [c for c in fake_telegram.calls_to("sendMessage") if c.params.get("chat_id") == CUSTOMER]
    assert len(fake_llm.requests_to("openai")) == 2  # the first message and the control: "Hello again?" never


@pytest.mark.django_db
def test_an_owner_message_answers_what_was_waiting_and_edits_and_deletions_apply_to_waiting_messages(
    client, fake_telegram, project_a
):
    """Without a worker: what the webhook stores for the owner's message, an edit and a deletion."""
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    connect(client, fake_telegram, project_a)
    first = business_message_update("bc-1", CUSTOMER, "Do you deliver?")
    second = business_message_update("bc-1", CUSTOMER, "To Berlin?")
    third = business_message_update("bc-1", CUSTOMER, "Ignore that")
    for update in (first, second, third):
        webhook_post(client, project_a, update)
    webhook_post(client, project_a, business_message_update(
        "bc-1", CUSTOMER, "To Hamburg!", edited=True, message_id=second["business_message"]["message_id"]
    ))  # fmt: skip
    webhook_post(client, project_a, deleted_business_messages_update(
        "bc-1", CUSTOMER, [third["business_message"]["message_id"]]
    ))  # fmt: skip
    chat = Chat.objects.get(project=project_a, business_connection_id="bc-1")
    waiting = list(Message.objects.filter(chat=chat, turn__isnull=True, needs_reply=True).order_by("pk"))
    assert [m.text for m in waiting] == ["Do you deliver?", "To Hamburg!"]  # edited; the deleted one dropped

    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Yes, we do.", sender=OWNER))
    turn = Turn.objects.get(chat=chat)
    assert (turn.trigger, turn.status, turn.reply) == ("owner", "sent", "Yes, we do.")
    assert turn.user_text == "Do you deliver?\n\nTo Hamburg!"
    assert set(Message.objects.filter(turn=turn).values_list("text", flat=True)) == {"Do you deliver?", "To Hamburg!"}
    # An edit of an answered message does not reopen it.
    webhook_post(client, project_a, business_message_update(
        "bc-1", CUSTOMER, "Do you deliver on Sundays?", edited=True, message_id=first["business_message"]["message_id"]
    ))  # fmt: skip
    assert Message.objects.get(telegram_message_id=first["business_message"]["message_id"]).text == "Do you deliver?"
    chat.refresh_from_db()
    assert chat.paused_at is not None
    assert chat.paused_until is not None
    assert not fake_telegram.calls_to("sendMessage")


@pytest.mark.django_db
def test_an_operator_takeover_is_not_cut_short_by_the_owner_and_hand_back_clears_the_pause(client, fake_telegram,
                                                                                          project_a):  # fmt: skip
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    connect(client, fake_telegram, project_a)
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hello"))
    chat = Chat.objects.get(project=project_a, business_connection_id="bc-1")
    chat_take_over(chat=chat, operator="op")
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hi Carl", sender=OWNER))
    chat.refresh_from_db()
    assert chat.paused_at is not None
    assert chat.paused_until is None
    chat_hand_back(chat=chat, operator="op")
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Me again", sender=OWNER))
    chat.refresh_from_db()
    assert chat.paused_until is not None
    chat_take_over(chat=chat, operator="op")  # an operator's takeover outlasts the owner's quiet period
    chat.refresh_from_db()
    assert chat.paused_at is not None
    assert chat.paused_until is None


@pytest.mark.django_db
def test_typing_and_a_document_go_through_the_connection_and_a_forward_is_refused(client, fake_telegram, project_a):
    """The outbox adds the chat's connection to every method that takes one, and refuses the others, which would
    act in the customer's chat with the bot instead."""
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    connect(client, fake_telegram, project_a)
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hello"))
    chat = Chat.objects.get(project=project_a, business_connection_id="bc-1")

    send_chat_action(project=project_a, chat=chat)
    call_with_policy(
        project=project_a, chat=chat, method_name="send_document", document=b"price list", filename="p.txt"
    )
    with pytest.raises(PermanentSendError, match="not available in a business chat"):
        call_with_policy(project=project_a, chat=chat, method_name="forward_message", from_chat_id=1, message_id=1)

    sent = calls_to_chat(fake_telegram, project_a, CUSTOMER)
    assert [c.method for c in sent] == ["sendChatAction", "sendDocument"]
    assert all(c.params["business_connection_id"] == "bc-1" for c in sent)
    document = fake_telegram.wait_for("sendDocument")[0]
    assert document.ok

    # Once the owner withdraws the right to reply, nothing goes out, and the reason says so.
    connect(client, fake_telegram, project_a, can_reply=False)
    with pytest.raises(PermanentSendError, match="can_reply"):
        send_text(project=project_a, chat=chat, text="hello")
    assert not fake_telegram.calls_to("sendMessage")


@pytest.mark.django_db
def test_the_console_shows_the_connection_and_the_chat_origin_to_its_project_only(client, fake_telegram, project_a,
                                                                                   project_b):  # fmt: skip
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    connect(client, fake_telegram, project_a, can_reply=False)
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Hello"))
    chat = Chat.objects.get(project=project_a, business_connection_id="bc-1")
    connection = BusinessConnection.objects.get(project=project_a)

    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.VIEWER).user)
    listing = client.get(reverse("admin:bots_businessconnection_changelist")).content.decode()
    assert "@olga_shop" in listing
    page = client.get(reverse("admin:bots_businessconnection_change", args=[connection.pk])).content.decode()
    assert "Olga @olga_shop (user 900)" in page
    assert "can_read_messages" not in page  # only what was granted: nothing
    transcript = client.get(reverse("admin:bots_chat_change", args=[chat.pk])).content.decode()
    assert "Telegram Business: written to" in transcript
    assert "the bot may not reply" in transcript

    client.force_login(MembershipFactory(project=project_b, role=Membership.Role.OWNER).user)
    assert client.get(reverse("admin:bots_businessconnection_change", args=[connection.pk])).status_code in (302, 404)
    assert "olga_shop" not in client.get(reverse("admin:bots_businessconnection_changelist")).content.decode()


@pytest.mark.django_db
def test_updates_that_are_not_business_messages_are_refused_and_store_nothing(client, fake_telegram, project_a):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    broken = business_message_update("bc-1", CUSTOMER, "Hello")
    del broken["business_message"]["business_connection_id"]
    response = client.post(
        f"/telegram/webhook/{project_a.slug}/", data=json.dumps(broken), content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 400
    assert b"business_connection_id is missing" in response.content
    assert not Chat.objects.exists()

    # Telegram before Bot API 9.0 sent one `can_reply` field instead of the rights: still read.
    legacy = fake_telegram.connect_business(project_a.bot_token, "bc-old", owner=OWNER)
    del legacy["rights"]
    legacy["can_reply"] = True
    assert normalize_update(business_connection_update(legacy)).business_connection.can_reply
    # A `/start` written to a business is the customer's text, not a command to the bot.
    assert normalize_update(business_message_update("bc-1", CUSTOMER, "/start")).command is None


def test_the_quiet_period_setting_is_a_duration_within_bounds():
    assert setting_parse(key="business_quiet_seconds", text="30m") == 1800
    assert setting_parse(key="business_quiet_seconds", text="2h") == 7200
    assert PROJECT_SETTINGS["business_quiet_seconds"].format(1800) == "30m"
    for text in ("1s", "31d", "soon"):
        with pytest.raises(SettingInvalid, match="business_quiet_seconds"):
            setting_parse(key="business_quiet_seconds", text=text)


def test_a_reply_being_written_when_the_owner_writes_is_not_sent(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    connect(client, fake_telegram, project_a)
    fake_llm.openai.push(llm_api.text("the bot's late answer", delay=3.0))
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Is it in stock?"))
    fake_llm.wait_for("openai", 1, timeout=30)
    webhook_post(client, project_a, business_message_update("bc-1", CUSTOMER, "Yes, two left.", sender=OWNER))
    wait_until(lambda: Turn.objects.filter(trigger="user", status="silent").exists(), what="the withheld reply",
               worker=celery_worker)  # fmt: skip

    assert not business_sends(fake_telegram, project_a)
    withheld = Turn.objects.get(trigger="user")
    assert (withheld.reply, withheld.blocks) == ("", [])
    assert "the business owner took the chat over meanwhile: the bot's late answer" in withheld.error
