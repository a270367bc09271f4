"""Sending through the real python-telegram-bot to the fake Bot API, under the error policy."""

import asyncio
import logging
import time

import pytest

from bots import telegram_client, telegram_outbox
from bots.event_loop import run_sync
from bots.models import Chat
from bots.telegram_outbox import (
    ChatBlocked,
    PermanentSendError,
    SendError,
    SendOutcomeUnknown,
    SentMessage,
    TypingIndicator,
    call_with_policy,
    send_chat_action,
    send_text,
    send_text_async,
)
from tests.infrastructure import free_port

pytestmark = pytest.mark.django_db

INLINE = {"inline_keyboard": [[{"text": "Accept", "callback_data": "match:accept:1"}]]}
SHARE_CONTACT = {
    "keyboard": [[{"text": "Share contact", "request_contact": True}]],
    "one_time_keyboard": True,
    "resize_keyboard": True,
}


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """The waits the policy asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(telegram_outbox, "sleep", recorded.append)
    return recorded


@pytest.fixture
def fresh_bots():
    """Bots are cached per token; a test that changes their settings needs new ones, and must not leak them."""
    telegram_client._bots.clear()
    yield
    telegram_client._bots.clear()


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    return fake_telegram


@pytest.fixture
def chat_a(project_a) -> Chat:
    return Chat.objects.create(project=project_a, telegram_chat_id=501)


@pytest.fixture
def chat_b(project_b) -> Chat:
    return Chat.objects.create(project=project_b, telegram_chat_id=502)


def test_text_goes_to_the_right_chat_with_the_right_token(bots, project_a, project_b, chat_a, chat_b):
    sent_a = send_text(project=project_a, chat=chat_a, text="Hello from Alpha")
    sent_b = send_text(project=project_b, chat=chat_b, text="Привет от Beta")

    [call_a] = bots.calls_to("sendMessage", token=project_a.bot_token)
    [call_b] = bots.calls_to("sendMessage", token=project_b.bot_token)
    assert (call_a.params["chat_id"], call_a.params["text"]) == (501, "Hello from Alpha")
    assert (call_b.params["chat_id"], call_b.params["text"]) == (502, "Привет от Beta")
    assert sent_a == [SentMessage(message_id=1)]
    assert sent_b == [SentMessage(message_id=1)]
    # Project B's sends never carry project A's token, and no other call was made.
    assert [c.token for c in bots.calls] == [project_a.bot_token, project_b.bot_token]


def test_long_reply_arrives_in_order_with_the_keyboard_on_the_last_part(bots, project_a, chat_a):
    paragraphs = [f"Part {n}: " + "we clean windows and offices. " * 10 for n in range(30)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert 8500 < len(text) < 12000

    sent = send_text(project=project_a, chat=chat_a, text=text, reply_markup=INLINE)

    calls = bots.calls_to("sendMessage")
    assert len(calls) == 3
    assert all(call.ok and call.params["chat_id"] == 501 for call in calls)
    assert "\n\n".join(call.params["text"] for call in calls) == text
    assert [("reply_markup" in call.params) for call in calls] == [False, False, True]
    assert calls[-1].params["reply_markup"] == INLINE
    assert sent == [SentMessage(1), SentMessage(2), SentMessage(3)]


def test_request_contact_keyboard_is_sent_as_given(bots, project_a, chat_a):
    send_text(project=project_a, chat=chat_a, text="Please share your phone number", reply_markup=SHARE_CONTACT)
    [call] = bots.calls_to("sendMessage")
    assert call.params["reply_markup"] == SHARE_CONTACT


def test_keyboard_can_be_removed(bots, project_a, chat_a):
    send_text(project=project_a, chat=chat_a, text="Thanks!", reply_markup={"remove_keyboard": True})
    [call] = bots.calls_to("sendMessage")
    assert call.params["reply_markup"] == {"remove_keyboard": True}


def test_invalid_keyboard_fails_before_anything_is_sent(bots, project_a, chat_a):
    with pytest.raises(PermanentSendError, match="reply_markup"):
        send_text(project=project_a, chat=chat_a, text="hi", reply_markup={"buttons": []})
    assert bots.calls == []


def test_blank_text_sends_nothing(bots, project_a, chat_a):
    assert send_text(project=project_a, chat=chat_a, text="  \n ") == []
    assert bots.calls == []


def test_rate_limit_is_waited_out_then_the_same_part_is_resent(bots, project_a, chat_a, sleeps):
    bots.fail_next("sendMessage", status=429, retry_after=2)

    sent = send_text(project=project_a, chat=chat_a, text="Hello")

    assert sleeps == [2]
    calls = bots.calls_to("sendMessage")
    assert [c.failed_status for c in calls] == [429, None]
    assert [c.params["text"] for c in calls] == ["Hello", "Hello"]
    assert sent == [SentMessage(1)]


def test_rate_limit_gives_up_after_three_retries(bots, project_a, chat_a, sleeps):
    bots.fail_next("sendMessage", status=429, retry_after=1, times=4)

    with pytest.raises(SendError, match="rate limited") as info:
        send_text(project=project_a, chat=chat_a, text="Hello")

    assert type(info.value) is SendError
    assert sleeps == [1, 1, 1]
    assert len(bots.calls_to("sendMessage")) == 4


def test_a_very_long_flood_wait_is_not_slept_in_the_worker(bots, project_a, chat_a, sleeps):
    bots.fail_next("sendMessage", status=429, retry_after=3600)

    with pytest.raises(SendError, match="3600"):
        send_text(project=project_a, chat=chat_a, text="Hello")

    assert sleeps == []
    assert len(bots.calls_to("sendMessage")) == 1


def test_blocked_user_marks_the_chat_and_nothing_more_is_sent(bots, project_a, chat_a, caplog):
    bots.block_chat(project_a.bot_token, 501)

    with caplog.at_level(logging.INFO, logger="bots.telegram_outbox"), pytest.raises(ChatBlocked):
        send_text(project=project_a, chat=chat_a, text="Hello")

    assert len(bots.calls_to("sendMessage")) == 1
    chat_a.refresh_from_db()
    assert chat_a.blocked_at is not None
    assert any(r.project_id == project_a.pk and r.chat_id == 501 for r in caplog.records)

    fresh = Chat.objects.get(pk=chat_a.pk)
    with pytest.raises(ChatBlocked):
        send_text(project=project_a, chat=fresh, text="Hello again")
    send_chat_action(project=project_a, chat=fresh)
    assert len(bots.calls) == 1


def test_a_block_seen_twice_keeps_the_first_time(bots, project_a, chat_a):
    bots.block_chat(project_a.bot_token, 501)
    stale = Chat.objects.get(pk=chat_a.pk)  # a second worker's copy, loaded before the block was recorded
    with pytest.raises(ChatBlocked):
        send_text(project=project_a, chat=chat_a, text="one")
    first = Chat.objects.get(pk=chat_a.pk).blocked_at

    with pytest.raises(ChatBlocked):
        send_text(project=project_a, chat=stale, text="two")

    assert Chat.objects.get(pk=chat_a.pk).blocked_at == first


def test_a_block_in_one_project_does_not_touch_another(bots, project_a, project_b, chat_a, chat_b):
    bots.block_chat(project_a.bot_token, 501)
    with pytest.raises(ChatBlocked):
        send_text(project=project_a, chat=chat_a, text="hi")
    send_text(project=project_b, chat=chat_b, text="hi")

    chat_b.refresh_from_db()
    assert chat_b.blocked_at is None
    assert [c.ok for c in bots.calls_to("sendMessage", token=project_b.bot_token)] == [True]


def test_bad_request_is_permanent_and_tried_once(bots, project_a, chat_a, sleeps, caplog):
    bots.fail_next("sendMessage", status=400, description="Bad Request: can't parse entities")

    with caplog.at_level(logging.INFO), pytest.raises(PermanentSendError, match=r"(?i)can't parse entities"):
        send_text(project=project_a, chat=chat_a, text="<b>broken", parse_mode="HTML")

    assert len(bots.calls_to("sendMessage")) == 1
    assert sleeps == []
    failure = next(r for r in caplog.records if r.name == "bots.telegram_outbox")
    assert (failure.project_id, failure.chat_id) == (project_a.pk, 501)
    assert project_a.bot_token not in caplog.text


def test_a_failed_part_reports_the_parts_that_arrived(bots, project_a, chat_a):
    # The second part has no visible text once its HTML is parsed, so Telegram refuses it.
    text = "a" * 4000 + "\n\n" + "<i></i>" * 100

    with pytest.raises(PermanentSendError) as info:
        send_text(project=project_a, chat=chat_a, text=text, parse_mode="HTML")

    assert info.value.sent == (SentMessage(1),)
    assert [c.ok for c in bots.calls_to("sendMessage")] == [True, False]


@pytest.mark.usefixtures("fresh_bots")
def test_timeout_is_never_resent(bots, project_a, chat_a, settings, sleeps):
    settings.TELEGRAM_REQUEST_TIMEOUT_SECONDS = 0.5
    bots.delay_next("sendMessage", 1.5)

    with pytest.raises(SendOutcomeUnknown, match="may have arrived"):
        send_text(project=project_a, chat=chat_a, text="Hello")

    # The fake did receive it (and delivers it after the delay): resending would duplicate it.
    [call] = bots.wait_for("sendMessage", timeout=5)
    assert call.ok
    assert len(bots.calls_to("sendMessage")) == 1
    assert sleeps == []


def test_bad_gateway_is_retried_with_backoff(bots, project_a, chat_a, sleeps):
    bots.fail_next("sendMessage", status=502, times=2)

    sent = send_text(project=project_a, chat=chat_a, text="Hello")

    assert sent == [SentMessage(1)]
    assert [c.failed_status for c in bots.calls_to("sendMessage")] == [502, 502, None]
    assert sleeps == list(telegram_outbox.NETWORK_RETRY_BACKOFF_SECONDS)


def test_bad_gateway_gives_up_after_two_retries(bots, project_a, chat_a, sleeps):
    bots.fail_next("sendMessage", status=502, times=3)

    with pytest.raises(SendError) as info:
        send_text(project=project_a, chat=chat_a, text="Hello")

    assert type(info.value) is SendError
    assert len(bots.calls_to("sendMessage")) == 3
    assert len(sleeps) == 2


@pytest.mark.usefixtures("fresh_bots")
def test_a_send_that_finds_every_connection_busy_waits_for_one(bots, project_a, chat_a, settings, sleeps,
                                                                monkeypatch):  # fmt: skip
    # Hundreds of turns of one process send at once: a pool timeout is this process's congestion, not a
    # Telegram failure, so the reply waits for a connection instead of failing after the network retries.
    monkeypatch.setattr(telegram_client, "TELEGRAM_CONNECTIONS", 1)
    settings.TELEGRAM_POOL_TIMEOUT_SECONDS = 0.2
    bots.delay_next("sendMessage", 1.5)  # the first send holds the only connection for several pool waits

    async def both() -> list[list[SentMessage]]:
        first = asyncio.create_task(send_text_async(project=project_a, chat=chat_a, text="first"))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(send_text_async(project=project_a, chat=chat_a, text="second"))
        await asyncio.sleep(0.5)
        # The second waits in our queue, not in httpx's pool: httpcore 1.0.9 can leak a slot of a request
        # that times out or is cancelled there (encode/httpcore#1093).
        pool = telegram_client.bot_for_token(project_a.bot_token).request._client._transport._pool
        assert len(pool._requests) == 1
        return [await first, await second]

    first, second = run_sync(both())

    assert [call.params["text"] for call in bots.calls_to("sendMessage")] == ["first", "second"]
    assert (len(first), len(second)) == (1, 1)
    assert sleeps == []  # no network back-off: each wait for the pool was the wait


@pytest.mark.usefixtures("fresh_bots")
def test_refused_connection_is_retried_because_nothing_was_sent(project_a, chat_a, settings, sleeps):
    settings.TELEGRAM_API_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens there

    with pytest.raises(SendError) as info:
        send_text(project=project_a, chat=chat_a, text="Hello")

    assert type(info.value) is SendError  # not SendOutcomeUnknown: the request never left
    assert len(sleeps) == 2
    assert project_a.bot_token not in str(info.value)


def test_policy_serves_other_methods_and_chats_that_are_not_rows(bots, project_a):
    group = -100777
    message = call_with_policy(project=project_a, chat=None, method_name="send_message", chat_id=group, text="Lead #1")
    assert message.message_id == 1

    bots.block_chat(project_a.bot_token, group)  # the bot was removed from the CRM group
    with pytest.raises(ChatBlocked):
        call_with_policy(project=project_a, chat=None, method_name="send_message", chat_id=group, text="Lead #2")
    assert not Chat.objects.filter(blocked_at__isnull=False).exists()


def test_typing_indicator_repeats_until_exit(bots, project_a, chat_a):
    with TypingIndicator(project=project_a, chat=chat_a, interval=0.05):
        calls = bots.wait_for("sendChatAction", count=2, token=project_a.bot_token)
    assert all(c.params == {"chat_id": 501, "action": "typing"} for c in calls)

    time.sleep(0.3)  # an action may still have been in flight at exit; none starts after it
    settled = len(bots.calls_to("sendChatAction", token=project_a.bot_token))
    time.sleep(0.3)
    assert len(bots.calls_to("sendChatAction", token=project_a.bot_token)) == settled


def test_typing_indicator_exit_lets_an_action_in_flight_finish(bots, project_a, chat_a):
    # A request cancelled while it waits for a pooled connection can leak that connection for good
    # (httpcore 1.0.9); one cancelled action per turn used up a busy process's whole pool.
    bots.delay_next("sendChatAction", 0.5, token=project_a.bot_token)

    async def turn() -> asyncio.Task[None]:
        async with TypingIndicator(project=project_a, chat=chat_a) as typing:
            await asyncio.sleep(0.1)  # the action is in flight when the turn ends
        return typing._task

    task = run_sync(turn())
    assert not task.done()  # the reply was not held back by the action
    run_sync(asyncio.wait_for(asyncio.shield(task), 5))
    assert not task.cancelled()
    [call] = bots.calls_to("sendChatAction", token=project_a.bot_token)
    assert call.ok


def test_typing_indicator_sends_at_once(bots, project_a, chat_a):
    with TypingIndicator(project=project_a, chat=chat_a):  # the default 4 s interval
        bots.wait_for("sendChatAction", timeout=2)


def test_chat_action_never_raises(bots, project_a, project_b, chat_a):
    bots.block_chat(project_a.bot_token, 501)
    bots.fail_next("sendChatAction", status=500, token=project_a.bot_token)
    send_chat_action(project=project_a, chat=chat_a)  # 500
    send_chat_action(project=project_a, chat=chat_a)  # 403
    token_b, project_b.bot_token = project_b.bot_token, ""
    send_chat_action(project=project_b, chat=chat_a)  # no token at all

    assert [c.failed_status for c in bots.calls_to("sendChatAction", token=project_a.bot_token)] == [500, 403]
    assert not bots.calls_to("sendChatAction", token=token_b)
    chat_a.refresh_from_db()
    assert chat_a.blocked_at is None  # a best-effort action does not write; the next real send will
