"""Fault injection with the real worker and the fakes: each scenario ends with every message answered once."""

import time

import pytest
from django.db import connection
from django.test import Client

from bots.conversation import OPEN_STATUSES
from bots.generations import generations_recover_expired_leases
from bots.models import Generation, Message, TelegramUpdate, Turn
from bots.tasks import generations_process_due_task
from tests.matching.dialogue import callback_update
from tests.reliability.conftest import (
    EchoModel,
    assert_timers_consistent,
    delivered_texts,
    post_concurrently,
    send,
    tally,
    wait_until,
)
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)


def all_answered(fake_telegram, chats, per_chat: int):
    def check() -> bool:
        return all(
            sum(len(turn) for turn in _echoes(fake_telegram, project, chat_id)) >= per_chat
            for project, chat_id in chats
        )

    return check


def _echoes(fake_telegram, project, chat_id):
    from tests.reliability.conftest import echoed_messages

    return echoed_messages(fake_telegram, project, chat_id)


def assert_clean(result) -> None:
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.messages_in > 0


def test_worker_killed_mid_turn_in_two_tenants(client, bots, fake_telegram, fake_llm, worker, beat):
    alpha, beta = bots
    model = EchoModel(fake_llm, delay=30.0)
    chats = [(alpha, 111), (alpha, 112), (beta, 211)]
    for project, chat_id in chats:
        assert send(client, project, text_update(chat_id, f"{project.slug} {chat_id} hello")) == 200
    fake_llm.wait_for("openai", 2, timeout=30)
    worker.kill()  # SIGKILL with model calls in flight: their turns are half-composed

    model.delay = 0.0
    worker.start()
    wait_until(all_answered(fake_telegram, chats, 1), what="every chat answered", worker=worker, tick=beat)
    time.sleep(1.0)

    result = tally("worker SIGKILL mid-turn (2 tenants)", fake_telegram, chats)
    assert_clean(result)
    assert result.replies_out == 3
    assert not Generation.objects.filter(status__in=Generation.ACTIVE).exists()
    assert set(Turn.objects.values_list("status", flat=True)) == {Turn.Status.SENT}
    assert_timers_consistent(chats)
    for project, chat_id in chats:
        assert delivered_texts(fake_telegram, project, chat_id) == [f"re: {project.slug} {chat_id} hello"]


def test_the_same_update_delivered_several_times_and_concurrently(client, bots, fake_telegram, fake_llm, worker):
    alpha, beta = bots
    EchoModel(fake_llm)
    update = text_update(111, "alpha 111 once please")
    other_tenant_same_id = text_update(211, "beta 211 same update id", update_id=update["update_id"])

    statuses = post_concurrently(
        Client,
        [lambda c: send(c, alpha, update) for _ in range(6)] + [lambda c: send(c, beta, other_tenant_same_id)],
    )
    assert statuses == [200] * 7
    assert send(client, alpha, update) == 200  # a late redelivery
    wait_until(lambda: len(delivered_texts(fake_telegram, beta, 211)) == 1, what="beta's reply", worker=worker)
    wait_until(lambda: len(delivered_texts(fake_telegram, alpha, 111)) == 1, what="alpha's reply", worker=worker)
    time.sleep(1.5)

    result = tally("same update x7, concurrently", fake_telegram, [(alpha, 111), (beta, 211)])
    assert_clean(result)
    assert TelegramUpdate.objects.filter(update_id=update["update_id"]).count() == 2  # one per tenant
    assert Message.objects.count() == 2
    assert len(fake_llm.requests_to("openai")) == 2


def test_llm_down_for_a_long_stretch_then_back(client, bots, fake_telegram, fake_llm, worker):
    alpha, _ = bots
    EchoModel(fake_llm)
    fake_llm.fail_all("openai", 503, retry_after=0)
    for index in range(3):
        assert send(client, alpha, text_update(111 + index, f"alpha {111 + index} during the outage")) == 200
    outage_chats = [(alpha, 111 + index) for index in range(3)]
    wait_until(lambda: all(delivered_texts(fake_telegram, p, c) for p, c in outage_chats), timeout=90,
               what="apologies during the outage", worker=worker)  # fmt: skip
    for project, chat_id in outage_chats:
        [apology] = delivered_texts(fake_telegram, project, chat_id)
        assert "cannot answer right now" in apology
    wait_until(lambda: Generation.objects.filter(status=Generation.Status.FAILED).count() == 3,
               what="three failed generations", worker=worker)  # fmt: skip

    fake_llm.recover("openai")
    for project, chat_id in outage_chats:
        assert send(client, project, text_update(chat_id, f"alpha {chat_id} after the outage")) == 200
    wait_until(lambda: all(len(delivered_texts(fake_telegram, p, c)) == 2 for p, c in outage_chats),
               what="answers after the outage", worker=worker)  # fmt: skip
    time.sleep(1.0)

    result = tally("LLM down (503) for 3 turns, then back", fake_telegram, outage_chats, note="apology during outage")
    assert_clean(result)
    assert result.replies_out == 6
    for project, chat_id in outage_chats:
        assert delivered_texts(fake_telegram, project, chat_id)[1] == f"re: alpha {chat_id} after the outage"


def test_telegram_429_storm_5xx_and_timeouts(client, bots, fake_telegram, fake_llm, worker):
    alpha, beta = bots
    EchoModel(fake_llm)
    # A 429 storm within Telegram's retry_after budget, two 502s, and one send that times out.
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=3, token=alpha.bot_token)
    fake_telegram.fail_next("sendMessage", status=502, times=2, token=beta.bot_token)
    assert send(client, alpha, text_update(111, "alpha 111 during the storm")) == 200
    assert send(client, beta, text_update(211, "beta 211 during the 502s")) == 200
    wait_until(lambda: delivered_texts(fake_telegram, alpha, 111) and delivered_texts(fake_telegram, beta, 211),
               what="replies through the storm", worker=worker)  # fmt: skip

    fake_telegram.delay_next("sendMessage", 4.0, token=alpha.bot_token)  # longer than the 2 s request timeout
    assert send(client, alpha, text_update(112, "alpha 112 timed out")) == 200
    wait_until(lambda: Turn.objects.filter(chat__telegram_chat_id=112, status=Turn.Status.SEND_UNKNOWN).exists(),
               what="the timed-out send marked unknown", worker=worker)  # fmt: skip
    time.sleep(5.0)  # the delayed request is answered by the fake after all, as Telegram would deliver it

    result = tally("Telegram 429 x3, 502 x2, one timeout", fake_telegram, [(alpha, 111), (beta, 211), (alpha, 112)],
                   note="timeout: sent once, never resent")  # fmt: skip
    assert_clean(result)
    attempts = [c.failed_status for c in fake_telegram.calls_to("sendMessage", token=alpha.bot_token)
                if c.params.get("chat_id") == 111]  # fmt: skip
    assert attempts == [429, 429, 429, None]
    # The timed-out send arrived once and was not repeated: at most once when the outcome is unknown.
    assert len([c for c in fake_telegram.calls_to("sendMessage") if c.params.get("chat_id") == 112]) == 1


def test_redis_restarted_while_messages_arrive(client, bots, fake_telegram, fake_llm, worker, redis_restarter, beat):
    alpha, beta = bots
    EchoModel(fake_llm)
    assert send(client, alpha, text_update(111, "alpha 111 before the restart")) == 200
    wait_until(lambda: delivered_texts(fake_telegram, alpha, 111), what="the first reply", worker=worker)

    redis_restarter()
    # While Redis is down the webhook still stores the messages (and answers 200): Telegram is not kept waiting.
    # Messages need no broker (the worker hears of them by NOTIFY); the button press waits for the sweep.
    assert send(client, alpha, text_update(111, "alpha 111 while redis is down")) == 200
    assert send(client, beta, text_update(211, "beta 211 while redis is down")) == 200
    assert send(client, alpha, callback_update(111, "menu:open")) == 200  # a button press, too
    assert Message.objects.filter(text__contains="while redis is down").count() == 2
    redis_restarter.start()
    assert send(client, alpha, text_update(112, "alpha 112 after the restart")) == 200

    chats = [(alpha, 111), (beta, 211), (alpha, 112)]
    wait_until(lambda: len(delivered_texts(fake_telegram, alpha, 111)) == 2
               and delivered_texts(fake_telegram, beta, 211) and delivered_texts(fake_telegram, alpha, 112),
               timeout=90, what="every message answered after the restart", worker=worker, tick=beat)  # fmt: skip
    wait_until(lambda: fake_telegram.calls_to("answerCallbackQuery", token=alpha.bot_token), timeout=30,
               what="the button press answered", worker=worker, tick=beat)  # fmt: skip
    time.sleep(1.5)
    result = tally("Redis restarted (queue emptied)", fake_telegram, chats, note="and a button press, answered once")
    assert_clean(result)
    assert len(fake_telegram.calls_to("answerCallbackQuery", token=alpha.bot_token)) == 1
    assert not TelegramUpdate.objects.filter(processed_at__isnull=True).exists()
    assert_timers_consistent(chats)
    assert not Generation.objects.filter(status__in=Generation.ACTIVE).exists()


def test_database_connections_killed_while_the_worker_is_busy(client, bots, fake_telegram, fake_llm, worker, beat):
    alpha, beta = bots
    model = EchoModel(fake_llm, delay=3.0)
    chats = [(alpha, 111), (beta, 211)]
    for project, chat_id in chats:
        assert send(client, project, text_update(chat_id, f"{project.slug} {chat_id} survive the database")) == 200
    fake_llm.wait_for("openai", 1, timeout=30)
    # "The database restarted": every server connection of the test database but ours is terminated.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        [terminated] = cursor.fetchone()
    assert terminated >= 1
    model.delay = 0.0

    def tick() -> None:
        beat()
        if generations_recover_expired_leases():
            generations_process_due_task.delay()

    wait_until(all_answered(fake_telegram, chats, 1), timeout=90, what="replies after the database came back",
               worker=worker, tick=tick)  # fmt: skip
    time.sleep(1.5)
    result = tally("database connections terminated mid-turn", fake_telegram, chats,
                   note="pg_terminate_backend on every connection")  # fmt: skip
    assert_clean(result)
    assert set(Turn.objects.values_list("status", flat=True)) == {Turn.Status.SENT}
    assert_timers_consistent(chats)


def test_database_connections_killed_while_a_reply_is_on_its_way(client, bots, fake_telegram, fake_llm, worker):
    """The write that records a sent reply must not be lost to a connection the server dropped meanwhile: the
    turn would stay `sending` and end `send_unknown` although Telegram has the reply."""
    alpha, _ = bots
    EchoModel(fake_llm)
    fake_telegram.delay_next("sendMessage", 1.0, token=alpha.bot_token)  # within the 2 s timeout
    assert send(client, alpha, text_update(111, "alpha 111 mid-send restart")) == 200
    wait_until(lambda: fake_telegram.calls_to("sendMessage", token=alpha.bot_token), what="the reply on its way",
               worker=worker)  # fmt: skip
    with connection.cursor() as cursor:  # while Telegram holds the request, the database "restarts"
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    wait_until(lambda: Turn.objects.exclude(status__in=OPEN_STATUSES).exists(), what="the turn recorded",
               worker=worker)  # fmt: skip
    time.sleep(1.0)
    assert delivered_texts(fake_telegram, alpha, 111) == ["re: alpha 111 mid-send restart"]
    assert list(Turn.objects.values_list("status", flat=True)) == [Turn.Status.SENT]


@pytest.mark.slow
def test_a_429_storm_longer_than_the_retry_budget_still_delivers_once(client, bots, fake_telegram, fake_llm, worker,
                                                                      beat):  # fmt: skip
    alpha, _ = bots
    EchoModel(fake_llm)
    fake_telegram.fail_next("sendMessage", status=429, retry_after=1, times=8, token=alpha.bot_token)
    assert send(client, alpha, text_update(111, "alpha 111 in a long storm")) == 200

    def tick() -> None:
        beat()
        if generations_recover_expired_leases():
            generations_process_due_task.delay()

    wait_until(lambda: delivered_texts(fake_telegram, alpha, 111), timeout=120, what="the reply after the storm",
               worker=worker, tick=tick)  # fmt: skip
    time.sleep(2.0)
    result = tally("Telegram 429 x8 (beyond the retry budget)", fake_telegram, [(alpha, 111)])
    assert_clean(result)


@pytest.mark.slow
def test_llm_down_with_real_backoff_then_back(client, bots, fake_telegram, fake_llm, worker):
    alpha, beta = bots
    EchoModel(fake_llm)
    fake_llm.fail_all("openai", 503)  # no Retry-After: the worker backs off 2^attempt s between tries
    chats = [(alpha, 111), (beta, 211)]
    for project, chat_id in chats:
        assert send(client, project, text_update(chat_id, f"{project.slug} {chat_id} during the outage")) == 200
    wait_until(lambda: all(delivered_texts(fake_telegram, p, c) for p, c in chats), timeout=120,
               what="apologies", worker=worker)  # fmt: skip
    fake_llm.recover("openai")
    for project, chat_id in chats:
        assert send(client, project, text_update(chat_id, f"{project.slug} {chat_id} after the outage")) == 200
    wait_until(lambda: all(len(delivered_texts(fake_telegram, p, c)) == 2 for p, c in chats), timeout=60,
               what="answers after the outage", worker=worker)  # fmt: skip
    time.sleep(1.0)
    result = tally("LLM down (503, real backoff), then back", fake_telegram, chats, note="apology during outage")
    assert_clean(result)
