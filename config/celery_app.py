"""The Celery app: JSON only, time limits, prefetch 1, DB-backed beat (settings in config/settings/celery.py)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in app.conf.task_queues_names]
app.autodiscover_tasks()
