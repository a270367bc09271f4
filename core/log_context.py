"""Ids that every log line of a unit of work carries (project, chat, generation, task), via contextvars.

Code binds them once where the work starts (the webhook, a Celery task, a generation run); the filter
copies them onto each record, where the JSON formatter prints them. An explicit `extra=` wins.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

_fields: ContextVar[dict[str, Any] | None] = ContextVar("switchboard_log_context", default=None)


def log_context_fields() -> dict[str, Any]:
    return dict(_fields.get() or {})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ids to every record logged inside the block (None values are left out)."""
    token = _fields.set({**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def log_context_bind(**fields: Any) -> None:
    """Set ids for the rest of the current unit of work (a Celery task starts each with a fresh context).

    A None value removes the id (a task that runs several generations rebinds for each one).
    """
    current = {**(_fields.get() or {}), **fields}
    _fields.set({key: value for key, value in current.items() if value is not None})


def log_context_start(**fields: Any) -> None:
    """Start a fresh context (a Celery task begins: nothing of the previous task on this thread remains)."""
    _fields.set({k: v for k, v in fields.items() if v is not None})


class LogContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_fields.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class LogContextMiddleware:
    """Each request starts with no ids: a web thread serves many requests, and services bind ids as they go."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        log_context_start()
        return self.get_response(request)
