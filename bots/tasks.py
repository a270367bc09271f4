"""Celery tasks of the engine: thin wiring around the services, which hold the logic."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from bots.callbacks import callback_process
from bots.chat_processing import chat_process
from bots.generations import generations_process_due, next_due_at
from bots.sweeps import PRESS_GIVE_UP_AFTER, engine_sweep_run, task_mark_started
from bots.turn_runner import turn_runner_wake

logger = logging.getLogger(__name__)

# A message still unprocessed (or unanswered with nothing queued) after this long lost its task.
STALE_AFTER = timedelta(seconds=30)
__all__ = ["PRESS_GIVE_UP_AFTER", "STALE_AFTER"]


def generations_kick_now() -> None:
    """Have due generations run: this process's turn runner if it has one, else a worker's task."""
    if not turn_runner_wake():
        generations_process_due_task.delay()


def generations_kick() -> None:
    """Ask a worker to run what is due now (after the current transaction commits)."""
    transaction.on_commit(generations_kick_now)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def chat_process_task(chat_id: int, swept: bool = False) -> None:
    """The chat's new messages, for the paths that have no listener at hand (the sweep, business chats,
    takeovers, CVs); the webhook's go by LISTEN / NOTIFY (bots/chat_intake.py). `swept`: the sweep queued
    it and marked the chat queued, so the task clears that mark."""
    if swept:
        task_mark_started(kind="chat", object_id=chat_id)
    generation = chat_process(chat_id=chat_id)
    if generation is not None and generation.scheduled_for <= timezone.now():
        generations_kick_now()  # no extra Celery hop: the runner of this process claims it


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def callback_process_task(update_id: int, swept: bool = False) -> None:
    if swept:
        task_mark_started(kind="press", object_id=update_id)
    callback_process(update_id=update_id)


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def generations_process_due_task() -> None:
    """Run due generations: a worker with a turn runner hands them to it, one without runs them here."""
    if turn_runner_wake():
        return
    generations_process_due(max_seconds=50)
    due = next_due_at()
    if due is not None and due <= timezone.now():
        generations_process_due_task.delay()  # bounded batches: the rest goes on in a fresh task


@shared_task(time_limit=60, soft_time_limit=50)
def engine_sweep() -> None:
    """Beat: recover what crashed workers left behind and start what is due."""
    engine_sweep_run(stale_after=STALE_AFTER)
