"""The async turn runner and the chat intake listener start with each Celery worker process that runs
tasks, and stop with it."""

import gc
import os
import sys
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from django.conf import settings

from bots.chat_intake import chat_intake_listen, chat_intake_stop
from bots.turn_runner import turn_runner_start, turn_runner_stop

_prefork = False


@worker_init.connect
def _note_pool(sender: Any = None, **kwargs: Any) -> None:
    global _prefork
    pool = getattr(sender, "pool_cls", "") or ""
    _prefork = "prefork" in (pool if isinstance(pool, str) else pool.__module__).lower()
    # The webhook must answer in milliseconds whatever the worker does: on a shared host the worker yields
    # the CPU to the web processes (its turns wait seconds for the model anyway).
    if settings.WORKER_NICE:
        os.nice(settings.WORKER_NICE)
    # A step that waited on PostgreSQL or an HTTP reply must get the GIL back soon, not after every busy
    # thread's full slice: another tenant's single chat otherwise waits behind a burst's threads at each step.
    sys.setswitchinterval(settings.WORKER_SWITCH_INTERVAL)


@worker_ready.connect
def _start_in_main_process(**kwargs: Any) -> None:
    if _prefork:
        return  # the pool's child processes run the tasks (below)
    if settings.TURN_RUNNER:  # threads / solo pool: the main process runs the tasks
        turn_runner_start()
    chat_intake_listen()
    _gc_freeze()


@worker_process_init.connect
def _start_in_pool_process(**kwargs: Any) -> None:
    if settings.TURN_RUNNER:  # prefork: each child process has its own runner
        turn_runner_start()
    chat_intake_listen()
    _gc_freeze()


def _gc_freeze() -> None:
    """The garbage collector of a process holding hundreds of turns: what the process loaded to start
    (Django, Celery, the libraries) is frozen, kept for good, so that no pass walks it again, and the
    thresholds (WORKER_GC_THRESHOLDS) make full passes rare. With Python's defaults a run of the 200-chat
    benchmark paid 9 full passes of up to 250 ms each, the GIL held and every turn in flight stalled."""
    gc.collect()
    gc.freeze()
    if settings.WORKER_GC_THRESHOLDS:
        gc.set_threshold(*settings.WORKER_GC_THRESHOLDS)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _stop(**kwargs: Any) -> None:
    chat_intake_stop()
    turn_runner_stop()
