"""Work that must never run twice at once, claimed with a PostgreSQL session lock."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@contextmanager
def session_lock(namespace: int, key: int) -> Iterator[bool]:
    """Yield whether this process holds the lock on (namespace, key) until the block ends.

    A session lock, so no transaction is held open while the work runs; a killed worker's lock goes with
    its connection, so the work can be resumed at once by whoever comes next.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        claimed = bool(cursor.fetchone()[0])
    try:
        yield claimed
    finally:
        if claimed:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
            except DatabaseError:  # the connection is gone, and the lock went with it
                logger.warning("session lock (%s, %s) was released with its lost connection", namespace, key)
