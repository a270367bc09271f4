"""A Celery worker on the embedded store becomes its one owner when it starts, or refuses to start.

The new owner rebuilds an embedded store left by the previous engine from the database (`knowledge.store_rebuild`).
"""

import logging
import sys
from typing import Any

from celery.signals import worker_init

from knowledge.store_owner import StoreOwnedElsewhere, store_is_embedded, store_owner_claim

logger = logging.getLogger(__name__)


def _pool_name(worker: Any) -> str:
    pool = getattr(worker, "pool_cls", "") or ""
    return (pool if isinstance(pool, str) else f"{pool.__module__}.{pool.__name__}").lower()


@worker_init.connect
def store_owner_claim_at_worker_start(sender: Any = None, **kwargs: Any) -> None:
    if not store_is_embedded():
        return
    if "prefork" in _pool_name(sender) or "processes" in _pool_name(sender):
        sys.stderr.write(
            "switchboard: refusing to start: the embedded vector store (QDRANT_URL unset) can be opened by one "
            "process only, and a prefork worker runs several. Run the worker with `-P threads` (the default "
            "pool) or set QDRANT_URL to a Qdrant server.\n"
        )
        raise SystemExit(1)
    try:
        store_owner_claim()
    except StoreOwnedElsewhere as exc:
        sys.stderr.write(f"switchboard: refusing to start: {exc}\n")
        raise SystemExit(1) from None
    logger.info("this worker owns the embedded vector store")
    _upgrade_store()


def _upgrade_store() -> None:
    """Round 1's local-mode data (or a store never rebuilt) is rebuilt from the database before any task runs."""
    from knowledge.store_rebuild import store_upgrade_if_needed  # the pipeline's imports: only in the owner

    try:
        rebuilt = store_upgrade_if_needed()
    except Exception:  # the worker still serves; the next start tries again (the marker is written last)
        logger.exception("the embedded vector store could not be rebuilt from the database")
        return
    if rebuilt is not None:
        logger.info("embedded vector store rebuilt: %s chunks in %s projects", sum(rebuilt.values()), len(rebuilt))
