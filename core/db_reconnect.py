"""A write that records what cannot be repeated must survive a connection the server dropped meanwhile."""

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def retried_after_lost_connection(fn: Callable[P, T]) -> Callable[P, T]:
    """Run an idempotent database write once more on a new connection if the first one was found dead.

    A thread that keeps its connection between steps (the turn runner's pool) learns of a database restart
    only from its next query. For the write that records a reply Telegram already has, that failure would
    leave the turn `sending`, and a later attempt could then only mark it `send_unknown`. Inside a caller's
    transaction nothing is retried: the transaction is lost with its connection.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or connection.is_usable():
                raise  # a real error of this write, or a transaction that cannot be replayed here
            logger.warning("database connection lost; %s runs again on a new one: %s", fn.__name__, exc)
            connection.close()
            return fn(*args, **kwargs)

    return run
