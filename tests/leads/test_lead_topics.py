"""A topic per lead in a forum lead group: real worker, fake LLM, fake Telegram speaking the forum methods."""

import itertools
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bots.models import Chat, Message, Turn
from bots.takeover import chat_operator_reply, chat_take_over
from leads.crm.base import CrmError
from leads.crm.telegram_group import TelegramGroupCrm
from leads.models import Lead, TopicInbound, TopicMirror, TopicState
from leads.services import lead_dispatch
from leads.tasks import lead_dispatch_task
from leads.topics import PAUSED_NOTICE, RESUMED_NOTICE, topic_inbound_apply, topic_inbound_retry, topic_name
from tests.fakes import llm_api
from tests.telegram_updates import text_update, topic_message_update, user, webhook_post

pytestmark = pytest.mark.django_db(transaction=True)

FORUM = -100700
PLAIN = -100800
OPERATOR = user(900, first_name="Mike", username="mike_ops")
_update_ids = itertools.count(50_000)


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))


@pytest.fixture
def shops(project_a, project_b, fake_telegram, celery_worker):
    """Project A's lead group is a forum; project B's is a plain supergroup."""
    for project, group in ((project_a, FORUM), (project_b, PLAIN)):
        project.lead_group_id = group
        project.followup_steps = []
        project.save()
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    fake_telegram.make_forum(FORUM)
    return project_a, project_b


def sent(fake_telegram, project, chat_id: int, method: str = "sendMessage") -> list:
    calls = fake_telegram.calls_to(method, token=project.bot_token)
    return [call for call in calls if call.ok and call.params.get("chat_id") == chat_id]


def lead_from_conversation(client, project, fake_telegram, fake_llm, worker, chat_id: int) -> Lead:
    fake_llm.openai.push(
        llm_api.tool_call("set_state", {"notes": "name: Anna\ncontact: +1 555 0100\nservice: windows"}),
        llm_api.tool_call("send_lead", {"summary": "Anna wants her windows washed."}),
        llm_api.text("Thank you, Anna! A manager will write to you."),
    )
    webhook_post(client, project, text_update(chat_id, "I'm Anna, +1 555 0100, windows please"))
    wait_until(lambda: Lead.objects.filter(project=project, status="sent").exists(), what="lead sent", worker=worker)
    wait_until(lambda: sent(fake_telegram, project, chat_id), what="the bot's thank-you", worker=worker)
    return Lead.objects.get(project=project)


def test_an_operator_in_the_leads_topic_talks_to_the_customer_once_and_hears_back(
    client, shops, fake_telegram, fake_llm, celery_worker
):
    shop, _ = shops
    lead = lead_from_conversation(client, shop, fake_telegram, fake_llm, celery_worker, 22)

    # The lead opened its own topic, named after it, and everything about it went there.
    [create] = fake_telegram.calls_to("createForumTopic", token=shop.bot_token)
    assert create.params == {"chat_id": FORUM, "name": f"Lead #{lead.pk} · Anna · +…0100"}
    [(thread, topic)] = fake_telegram.topics(FORUM).items()
    assert topic["name"] == topic_name(lead)
    assert (lead.topic_state, lead.topic_group_id, lead.topic_thread_id) == (TopicState.OPEN, FORUM, thread)
    posts = [*sent(fake_telegram, shop, FORUM, "forwardMessage"), *sent(fake_telegram, shop, FORUM),
             *sent(fake_telegram, shop, FORUM, "sendDocument")]  # fmt: skip
    assert len(posts) == 3
    assert {call.params.get("message_thread_id") for call in posts} == {thread}

    # An operator writes in the topic: the customer gets it once, the bot is paused (the console shows it).
    words = "Hi Anna, Mike here. Can we come tomorrow at 10?"
    update = topic_message_update(FORUM, thread, words, sender=OPERATOR, topic_name=topic["name"])
    webhook_post(client, shop, update)
    webhook_post(client, shop, update)  # Telegram redelivers it: a duplicate update_id changes nothing
    wait_until(lambda: [c for c in sent(fake_telegram, shop, 22) if c.params["text"] == words], what="relay")
    [inbound] = TopicInbound.objects.all()
    topic_inbound_apply(inbound_id=inbound.pk)  # and a redelivered task
    wait_until(lambda: [c for c in sent(fake_telegram, shop, FORUM) if c.params["text"] == PAUSED_NOTICE])
    time.sleep(1.5)
    assert [c.params["text"] for c in sent(fake_telegram, shop, 22)].count(words) == 1
    chat = Chat.objects.get(project=shop, telegram_chat_id=22)
    assert chat.paused_at is not None
    [turn] = Turn.objects.filter(chat=chat, trigger=Turn.Trigger.OPERATOR)
    assert (turn.reply, turn.status) == (words, Turn.Status.SENT)
    inbound.refresh_from_db()
    assert (inbound.status, inbound.turn_id, inbound.lead_id) == (TopicInbound.Status.RELAYED, turn.pk, lead.pk)
    [notice] = [c for c in sent(fake_telegram, shop, FORUM) if c.params["text"] == PAUSED_NOTICE]
    assert notice.params["message_thread_id"] == thread

    # The customer answers: it appears in the topic, and the paused bot stays silent.
    webhook_post(client, shop, text_update(22, "Tomorrow at 10 is perfect, thanks Mike"))
    wait_until(lambda: sent(fake_telegram, shop, FORUM, "forwardMessage")[1:], what="mirror", worker=celery_worker)
    mirror = sent(fake_telegram, shop, FORUM, "forwardMessage")[-1]
    answer = Message.objects.get(chat=chat, text__startswith="Tomorrow at 10")
    assert (mirror.params["from_chat_id"], mirror.params["message_id"]) == (22, answer.telegram_message_id)
    assert mirror.params["message_thread_id"] == thread
    wait_until(lambda: TopicMirror.objects.get(message=answer).status == TopicMirror.Status.SENT, what="mirror sent")
    time.sleep(1.5)
    assert len(sent(fake_telegram, shop, 22)) == 2  # the thank-you and the operator's words: no bot reply
    assert len(fake_llm.requests_to("openai")) == 3


def test_the_console_and_the_topic_stay_consistent(client, shops, fake_telegram, fake_llm, celery_worker):
    shop, _ = shops
    lead = lead_from_conversation(client, shop, fake_telegram, fake_llm, celery_worker, 23)
    thread = lead.topic_thread_id
    chat = Chat.objects.get(project=shop, telegram_chat_id=23)

    # A reply from the console reaches the customer once and is posted in the topic.
    assert chat_take_over(chat=chat, operator="boss")
    chat_operator_reply(chat=chat, text="We can come on Friday.", operator="boss")
    in_topic = lambda: [c for c in sent(fake_telegram, shop, FORUM) if "We can come on Friday." in c.params["text"]]  # noqa: E731
    wait_until(in_topic, what="console reply in the topic", worker=celery_worker)
    assert in_topic()[0].params["message_thread_id"] == thread
    assert [c.params["text"] for c in sent(fake_telegram, shop, 23)].count("We can come on Friday.") == 1

    # A photo from the topic is copied to the customer, once, and recorded as the operator's turn.
    photo = topic_message_update(FORUM, thread, "unused", sender=OPERATOR)
    del photo["message"]["text"]
    photo["message"].update(caption="Our van", photo=[{"file_id": "van", "file_unique_id": "u-van", "width": 90,
                                                       "height": 90}])  # fmt: skip
    fake_telegram.push_update(shop.bot_token, photo)  # Telegram knows the message it will copy
    webhook_post(client, shop, photo)
    wait_until(lambda: sent(fake_telegram, shop, 23, "copyMessage"), what="photo copied", worker=celery_worker)
    [copy] = sent(fake_telegram, shop, 23, "copyMessage")
    assert (copy.params["from_chat_id"], copy.params["message_id"]) == (FORUM, photo["message"]["message_id"])
    wait_until(lambda: Turn.objects.filter(chat=chat, reply__contains="[the operator sent a photo]", status="sent"))
    assert Turn.objects.get(chat=chat, reply__contains="photo").reply == "Our van\n[the operator sent a photo]"

    # /resume in the topic hands the chat back, as the console's hand back does; the bot answers again.
    webhook_post(client, shop, topic_message_update(FORUM, thread, "/resume", sender=OPERATOR))
    wait_until(lambda: Chat.objects.get(pk=chat.pk).paused_at is None, what="resumed", worker=celery_worker)
    wait_until(lambda: [c for c in sent(fake_telegram, shop, FORUM) if c.params["text"] == RESUMED_NOTICE])
    replies_before = len(sent(fake_telegram, shop, 23))
    webhook_post(client, shop, text_update(23, "One more thing: the balcony too"))
    wait_until(lambda: len(sent(fake_telegram, shop, 23)) > replies_before, what="bot answers", worker=celery_worker)
    assert not [c for c in sent(fake_telegram, shop, 23) if c.params["text"] == "/resume"]

    # The topic is deleted: what follows goes to the general thread, marked with the lead, and the reason is kept.
    fake_telegram.delete_topic(FORUM, thread)
    webhook_post(client, shop, text_update(23, "And the garage door"))
    general = lambda: [c for c in sent(fake_telegram, shop, FORUM) if "And the garage door" in c.params["text"]]  # noqa: E731
    wait_until(general, what="general thread", worker=celery_worker)
    assert general()[0].params["text"].startswith(f"Lead #{lead.pk} · Customer:")
    assert "message_thread_id" not in general()[0].params
    lead.refresh_from_db()
    assert lead.topic_state == TopicState.GENERAL
    assert "deleted" in lead.topic_note


def test_a_crash_during_topic_creation_never_makes_a_second_topic(
    client, shops, fake_telegram, fake_llm, celery_worker
):
    shop, _ = shops
    fake_llm.openai.push(llm_api.text("Hello!"))
    webhook_post(client, shop, text_update(24, "hello"))
    wait_until(lambda: Chat.objects.filter(project=shop, telegram_chat_id=24).exists())
    chat = Chat.objects.get(project=shop, telegram_chat_id=24)
    lead = Lead.objects.create(project=shop, chat=chat, summary="Crash in the middle", name="Boris")
    fake_telegram.delay_next("createForumTopic", 6)

    lead_dispatch_task.delay(lead.pk)
    wait_until(lambda: fake_telegram.calls_to("createForumTopic"), what="topic requested", worker=celery_worker)
    celery_worker.kill()  # Telegram creates the topic; the worker never learns its id
    fake_telegram.wait_for("createForumTopic", timeout=20)
    lead.refresh_from_db()
    assert (lead.topic_state, lead.topic_thread_id) == (TopicState.CREATING, None)
    with pytest.raises(CrmError, match="outcome is unknown"):  # a retry meanwhile does not ask for a second topic
        TelegramGroupCrm(shop).send(lead)

    # Telegram's service message about the new topic names the lead: the topic is recognised as its own.
    celery_worker.start()
    [(thread, _)] = fake_telegram.topics(FORUM).items()
    service = fake_telegram.stored_message(shop.bot_token, FORUM, thread)
    assert service["forum_topic_created"]["name"] == f"Lead #{lead.pk} · Boris"
    webhook_post(client, shop, {"update_id": next(_update_ids), "message": service})
    wait_until(lambda: Lead.objects.get(pk=lead.pk).topic_state == TopicState.OPEN, worker=celery_worker)

    lead_dispatch(lead=lead)
    lead.refresh_from_db()
    assert (lead.status, lead.topic_thread_id) == ("sent", thread)
    assert len(fake_telegram.calls_to("createForumTopic")) == 1
    [summary] = [c for c in sent(fake_telegram, shop, FORUM) if "Crash in the middle" in c.params["text"]]
    assert summary.params["message_thread_id"] == thread


def test_an_unknown_outcome_past_the_grace_goes_to_the_general_thread(client, shops, fake_telegram, fake_llm):
    shop, _ = shops
    fake_llm.openai.push(llm_api.text("Hello!"))
    webhook_post(client, shop, text_update(25, "hello"))
    chat = Chat.objects.get(project=shop, telegram_chat_id=25)
    lead = Lead.objects.create(
        project=shop, chat=chat, summary="Outcome never known", topic_state=TopicState.CREATING, topic_group_id=FORUM,
        topic_requested_at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip

    assert lead_dispatch(lead=lead).status == "sent"

    lead.refresh_from_db()
    assert lead.topic_state == TopicState.GENERAL
    assert "unknown" in lead.topic_note
    assert fake_telegram.calls_to("createForumTopic") == []
    [summary] = [c for c in sent(fake_telegram, shop, FORUM) if "Outcome never known" in c.params["text"]]
    assert "message_thread_id" not in summary.params


def test_a_plain_group_is_unchanged_and_its_messages_reach_nobody(
    client, shops, fake_telegram, fake_llm, celery_worker
):
    _, beta = shops
    lead = lead_from_conversation(client, beta, fake_telegram, fake_llm, celery_worker, 26)

    assert fake_telegram.calls_to("createForumTopic") == []
    assert (lead.topic_state, lead.topic_thread_id) == (TopicState.NONE, None)
    posts = [c for c in fake_telegram.calls if c.params.get("chat_id") == PLAIN and c.method != "getChat"]
    assert [c.method for c in posts] == ["forwardMessage", "sendMessage", "sendDocument"]
    assert not [c for c in posts if "message_thread_id" in c.params]
    # A member chatting in the plain group (or in some topic that is no lead's) is not relayed to anyone.
    webhook_post(client, beta, text_update(PLAIN, "who is on call today?", sender=OPERATOR))
    webhook_post(client, beta, topic_message_update(PLAIN, 77, "random topic", sender=OPERATOR))
    time.sleep(2)
    assert len(sent(fake_telegram, beta, 26)) == 1
    assert Chat.objects.get(project=beta, telegram_chat_id=26).paused_at is None
    assert not TopicInbound.objects.filter(status=TopicInbound.Status.RELAYED).exists()


def test_a_topic_message_whose_task_was_lost_is_relayed_by_the_sweep_once(
    client, shops, fake_telegram, fake_llm, celery_worker
):
    shop, _ = shops
    lead = lead_from_conversation(client, shop, fake_telegram, fake_llm, celery_worker, 27)
    celery_worker.kill()  # the task of the operator's message waits in the broker with nobody to run it
    words = "Mike here: is Saturday fine?"
    webhook_post(client, shop, topic_message_update(FORUM, lead.topic_thread_id, words, sender=OPERATOR))
    [inbound] = TopicInbound.objects.all()
    assert inbound.status == TopicInbound.Status.PENDING

    assert topic_inbound_retry(older_than_seconds=0) == 1  # beat's sweep
    celery_worker.start()  # and the queued task runs after all
    wait_until(lambda: not TopicInbound.objects.filter(status=TopicInbound.Status.PENDING).exists())
    time.sleep(3)
    assert [c.params["text"] for c in sent(fake_telegram, shop, 27)].count(words) == 1
    inbound.refresh_from_db()
    assert inbound.status == TopicInbound.Status.RELAYED
    assert inbound.turn.status == Turn.Status.SENT
    assert topic_inbound_retry(older_than_seconds=0) == 0
