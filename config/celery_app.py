"""The Celery app: JSON only, time limits, prefetch 1, DB-backed beat (settings in config/settings/celery.py)."""

import os

from celery import Celery, Task
from celery.signals import task_prerun
from kombu import Queue

from core.log_context import log_context_start

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in app.conf.task_queues_names]
app.autodiscover_tasks()


@task_prerun.connect
def _log_context_per_task(task_id: str, task: Task, **kwargs: object) -> None:
    """Each task's log lines carry its name and id; services add project, chat and generation ids."""
    log_context_start(task=task.name, task_id=task_id)
