"""Every task of ours can be sent: time limits consistent, routed to a named queue, JSON only."""

import pytest
from django.conf import settings

from config import queues
from config.celery_app import app

OUR_PREFIXES = ("bots.", "knowledge.", "leads.", "matching.", "tenants.", "config.")


def our_tasks() -> list:
    app.loader.import_default_modules()
    return [task for name, task in sorted(app.tasks.items()) if name.startswith(OUR_PREFIXES)]


def test_there_are_tasks_to_check():
    assert len(our_tasks()) >= 6


@pytest.mark.parametrize("task", our_tasks(), ids=lambda task: task.name)
def test_task_limits_and_route(task):
    hard = task.time_limit or settings.CELERY_TASK_TIME_LIMIT
    soft = task.soft_time_limit or settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert soft <= hard, f"{task.name}: soft limit {soft} over hard limit {hard}; sending it would raise"
    route = app.amqp.router.route({}, task.name)
    assert route["queue"].name in queues.ALL


def test_json_only():
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.worker_prefetch_multiplier == 1
