"""The Celery app: JSON only, time limits, prefetch 1, DB-backed beat (settings in config/settings/celery.py)."""

import os

from celery import Celery, Task
from celery.signals import task_prerun
from kombu import Queue

from core.log_context import log_context_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Celery's Django fixup runs every system check at worker start and discards the result (0.18 s of CPU, a
# tenth of a start: it loads the URLconf and the API for the URL checks); the release phase's `migrate` runs
# them and fails on an error.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in app.conf.task_queues_names]
app.autodiscover_tasks()


@task_prerun.connect
def _log_context_per_task(task_id: str, task: Task, **kwargs: object) -> None:
    """Each task's log lines carry its name and id; services add project, chat and generation ids."""
    log_context_start(task=task.name, task_id=task_id)
