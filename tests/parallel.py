"""Per-process state of a parallel run (pytest-xdist), set up before pytest-django imports the settings.

Loaded with `-p tests.parallel` (pyproject's addopts): a conftest would come too late, the settings read
these values from the environment when pytest-django imports them, and prometheus_client decides where
each sample lives before any test runs. Each xdist worker is a test session of its own and already gets
its own test database (pytest-django appends `_gw0`), Redis, fake servers and worker processes (started
per session on ports the OS picks). What the settings keep on disk is given a directory per xdist worker
here: the Prometheus multiprocess directory (every Celery worker a session starts writes beside it and
`GET /metrics` reads all of it) and MEDIA_ROOT. The worker processes a session starts inherit both from
its environment. A serial run keeps the settings' defaults.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_private: Path | None = None

if XDIST_WORKER:
    _private = Path(tempfile.mkdtemp(prefix=f"switchboard-tests-{XDIST_WORKER}-"))
    # Always, even when set: the settings of the controlling process exported their default before
    # xdist started this process with that environment.
    for name, directory in (("PROMETHEUS_MULTIPROC_DIR", "prometheus"), ("MEDIA_ROOT", "media")):
        (_private / directory).mkdir()
        os.environ[name] = str(_private / directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private is not None:
        shutil.rmtree(_private, ignore_errors=True)
