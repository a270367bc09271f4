"""Celery tasks of the engine: thin wiring around the services, which hold the logic."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from bots.callbacks import callback_process
from bots.chat_processing import chat_process
from bots.conversation import unanswered_messages
from bots.generations import (
    generation_schedule,
    generations_process_due,
    generations_recover_expired_leases,
    next_due_at,
)
from bots.models import Chat, Generation, Message, TelegramUpdate, Turn

logger = logging.getLogger(__name__)

# A message still unprocessed (or unanswered with nothing queued) after this long lost its task.
STALE_AFTER = timedelta(seconds=30)
PRESS_GIVE_UP_AFTER = timedelta(hours=1)


def generations_kick() -> None:
    """Ask a worker to run what is due now (after the current transaction commits)."""
    transaction.on_commit(lambda: generations_process_due_task.delay())


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def chat_process_task(chat_id: int) -> None:
    generation = chat_process(chat_id=chat_id)
    if generation is not None and generation.scheduled_for <= timezone.now():
        generations_process_due_task.delay()


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def callback_process_task(update_id: int) -> None:
    callback_process(update_id=update_id)


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def generations_process_due_task() -> None:
    generations_process_due(max_seconds=50)
    due = next_due_at()
    if due is not None and due <= timezone.now():
        generations_process_due_task.delay()  # bounded batches: the rest goes on in a fresh task


@shared_task(time_limit=60, soft_time_limit=50)
def engine_sweep() -> None:
    """Beat: recover what crashed workers left behind and start what is due."""
    generations_recover_expired_leases()
    stale = timezone.now() - STALE_AFTER
    # A press that still fails after PRESS_GIVE_UP_AFTER (its handler keeps raising) stops being retried.
    presses = TelegramUpdate.objects.filter(
        processed_at__isnull=True, received_at__lt=stale, received_at__gt=timezone.now() - PRESS_GIVE_UP_AFTER
    )
    for update_id in presses.values_list("pk", flat=True)[:500]:
        callback_process_task.delay(update_id)
    unprocessed = Message.objects.filter(processed_at__isnull=True, created_at__lt=stale)
    for chat_id in unprocessed.values_list("chat_id", flat=True).distinct()[:500]:
        chat_process_task.delay(chat_id)
    waiting_chats = (
        Message.objects.filter(turn__isnull=True, needs_reply=True, processed_at__lt=stale)
        .exclude(chat__generations__status__in=Generation.ACTIVE)
        .values_list("chat_id", flat=True)
        .distinct()[:500]
    )
    for chat in Chat.objects.filter(pk__in=list(waiting_chats), blocked_at__isnull=True, paused_at__isnull=True):
        if unanswered_messages(chat).exists():
            generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)
    # Replies stored but not delivered (Telegram refused for a while): a chat turn resumes and sends them.
    undelivered_chats = (
        Turn.objects.filter(status=Turn.Status.REPLY_READY, created_at__lt=stale)
        .exclude(chat__generations__status__in=Generation.ACTIVE)
        .values_list("chat_id", flat=True)
        .distinct()[:500]
    )
    for chat in Chat.objects.filter(pk__in=list(undelivered_chats), blocked_at__isnull=True, paused_at__isnull=True):
        generation_schedule(project=chat.project, kind=Generation.Kind.CHAT_TURN, chat=chat)
    due = next_due_at()
    if due is not None and due <= timezone.now():
        generations_process_due_task.delay()
