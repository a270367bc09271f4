"""The engine's beat sweep: recover what crashed workers left behind and start what is due.

A chat (or a button press) is re-queued at most once while a task for it is queued or running: the
sweep marks it in Redis when it enqueues (`SET NX` with a TTL), and the task it queued (`swept=True`)
clears the mark as it starts.
A mark whose task was lost (Redis emptied, a worker gone before the task began) expires after
ENQUEUED_MARK_SECONDS, and the next sweep queues the chat again.
"""

import logging
from datetime import timedelta
from functools import lru_cache

import redis
from django.conf import settings
from django.utils import timezone

from bots.business import business_pauses_end
from bots.conversation import unanswered_messages
from bots.generations import generation_schedule, generations_recover_expired_leases, next_due_at
from bots.models import Chat, Generation, Message, TelegramUpdate, Turn

logger = logging.getLogger(__name__)

PRESS_GIVE_UP_AFTER = timedelta(hours=1)
ENQUEUED_MARK_SECONDS = 120
BATCH = 500


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _mark_key(kind: str, object_id: int) -> str:
    return f"switchboard:queued:{kind}:{object_id}"


def task_mark_enqueued(*, kind: str, object_id: int) -> bool:
    """Mark a task for this object as queued; False when one is queued or running already."""
    return bool(_redis(settings.REDIS_URL).set(_mark_key(kind, object_id), 1, nx=True, ex=ENQUEUED_MARK_SECONDS))


def task_mark_started(*, kind: str, object_id: int) -> None:
    """The task runs: later messages of the object need a new task, so the sweep may queue one again."""
    try:
        _redis(settings.REDIS_URL).delete(_mark_key(kind, object_id))
    except redis.RedisError:
        logger.warning("could not clear the queued mark of %s %s", kind, object_id)


def press_mark_answered(*, update: TelegramUpdate) -> bool:
    """Claim the one answerCallbackQuery of a press; False when an earlier attempt of it answered already.

    Keyed by the stored update and its arrival, kept as long as the sweep retries presses. Without Redis the
    claim is granted: a second answer is refused by Telegram, harmless, while no answer is a stuck button.
    """
    key = f"switchboard:answered:press:{update.pk}:{update.received_at.timestamp():.6f}"
    ttl = int(PRESS_GIVE_UP_AFTER.total_seconds()) + ENQUEUED_MARK_SECONDS
    try:
        return bool(_redis(settings.REDIS_URL).set(key, 1, nx=True, ex=ttl))
    except redis.RedisError:
        logger.warning("could not mark press %s answered; answering anyway", update.pk)
        return True


def engine_sweep_run(*, stale_after: timedelta) -> dict[str, int]:
    """One sweep; returns how many of each thing it queued (for logs and tests)."""
    from bots.tasks import callback_process_task, chat_process_task, generations_kick_now

    counts = {"requeued_generations": generations_recover_expired_leases(), "presses": 0, "chats": 0, "turns": 0}
    counts["business_resumed"] = business_pauses_end()
    now = timezone.now()
    stale = now - stale_after
    # A press that still fails after PRESS_GIVE_UP_AFTER (its handler keeps raising) stops being retried.
    presses = TelegramUpdate.objects.filter(
        processed_at__isnull=True, received_at__lt=stale, received_at__gt=now - PRESS_GIVE_UP_AFTER
    )
    for update_id in presses.values_list("pk", flat=True)[:BATCH]:
        if task_mark_enqueued(kind="press", object_id=update_id):
            callback_process_task.delay(update_id, swept=True)
            counts["presses"] += 1
    unprocessed = Message.objects.filter(processed_at__isnull=True, created_at__lt=stale)
    for chat_id in unprocessed.values_list("chat_id", flat=True).distinct()[:BATCH]:
        if task_mark_enqueued(kind="chat", object_id=chat_id):
            chat_process_task.delay(chat_id, swept=True)
            counts["chats"] += 1
    waiting_chats = (
        Message.objects.filter(turn__isnull=True, needs_reply=True, processed_at__lt=stale)
        .exclude(chat__generations__status__in=Generation.ACTIVE)
        .values_list("chat_id", flat=True)
        .distinct()[:BATCH]
    )
    for chat in Chat.objects.filter(pk__in=list(waiting_chats), blocked_at__isnull=True, paused_at__isnull=True):
        if unanswered_messages(chat).exists():
            generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)
            counts["turns"] += 1
    # Replies stored but not delivered (Telegram refused for a while): a chat turn resumes and sends them.
    undelivered_chats = (
        Turn.objects.filter(status=Turn.Status.REPLY_READY, created_at__lt=stale)
        .exclude(chat__generations__status__in=Generation.ACTIVE)
        .values_list("chat_id", flat=True)
        .distinct()[:BATCH]
    )
    for chat in Chat.objects.filter(pk__in=list(undelivered_chats), blocked_at__isnull=True, paused_at__isnull=True):
        generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)
        counts["turns"] += 1
    due = next_due_at()
    if due is not None and due <= timezone.now():
        generations_kick_now()
    return counts
