"""The beat sweep re-queues a chat (or a button press) at most once while its task is queued or running."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bots import tasks as bot_tasks
from bots.models import Chat, Message, TelegramUpdate
from bots.sweeps import engine_sweep_run, task_mark_started

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch, redis_client) -> dict[str, list[int]]:
    calls: dict[str, list[int]] = {"chat": [], "press": []}
    for kind, task in (("chat", bot_tasks.chat_process_task), ("press", bot_tasks.callback_process_task)):
        monkeypatch.setattr(task, "delay", lambda object_id, swept, kind=kind: calls[kind].append(object_id))
    return calls


def _stale_message(project, chat_id: int) -> Chat:
    chat = Chat.objects.create(project=project, telegram_chat_id=chat_id)
    message = Message.objects.create(project=project, chat=chat, telegram_message_id=1, text="hello?")
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    return chat


def test_a_stale_chat_is_requeued_once_until_its_task_runs(project_a, project_b, enqueued):
    chat_a, chat_b = _stale_message(project_a, 11), _stale_message(project_b, 22)
    for _ in range(5):  # five beats while the tasks wait in a busy queue
        engine_sweep_run(stale_after=timedelta(seconds=30))
    assert sorted(enqueued["chat"]) == sorted([chat_a.pk, chat_b.pk])

    task_mark_started(kind="chat", object_id=chat_a.pk)  # A's task ran (and, say, died before processing)
    engine_sweep_run(stale_after=timedelta(seconds=30))
    assert sorted(enqueued["chat"]) == sorted([chat_a.pk, chat_b.pk, chat_a.pk])


def test_a_lost_press_is_requeued_once(project_a, enqueued):
    update = TelegramUpdate.objects.create(project=project_a, update_id=77, payload={"callback_query": {}})
    TelegramUpdate.objects.filter(pk=update.pk).update(received_at=timezone.now() - timedelta(minutes=2))
    engine_sweep_run(stale_after=timedelta(seconds=30))
    engine_sweep_run(stale_after=timedelta(seconds=30))
    assert enqueued["press"] == [update.pk]


def test_the_chat_task_clears_the_mark_when_it_starts(project_a, enqueued, redis_client):
    chat = _stale_message(project_a, 33)
    engine_sweep_run(stale_after=timedelta(seconds=30))
    assert redis_client.exists(f"switchboard:queued:chat:{chat.pk}")
    bot_tasks.chat_process_task.run(chat.pk, swept=True)
    assert not redis_client.exists(f"switchboard:queued:chat:{chat.pk}")


def test_a_chat_task_the_webhook_queued_leaves_the_sweeps_mark(project_a, enqueued, redis_client):
    """The webhook's task may run while the sweep's waits in the queue: the mark stays with the sweep's."""
    chat = _stale_message(project_a, 34)
    engine_sweep_run(stale_after=timedelta(seconds=30))
    bot_tasks.chat_process_task.run(chat.pk)
    assert redis_client.exists(f"switchboard:queued:chat:{chat.pk}")
