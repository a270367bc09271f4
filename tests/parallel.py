"""Per-process state of a parallel run (pytest-xdist), set up before pytest-django imports the settings.

Loaded with `-p tests.parallel` (pyproject's addopts): a conftest would come too late, the settings read
these values from the environment when pytest-django imports them, and prometheus_client decides where
each sample lives before any test runs. Each xdist worker is a test session of its own and already gets
its own test database (pytest-django appends `_gw0`), Redis, fake servers and worker processes (started
per session on ports the OS picks). What the settings keep on disk is given a directory per xdist worker
here: the Prometheus multiprocess directory (every Celery worker a session starts writes beside it and
`GET /metrics` reads all of it) and MEDIA_ROOT. The worker processes a session starts inherit both from
its environment. A serial run keeps the settings' defaults.

The sessions' test databases are copies of one template (`template_database_clone`): the first session to
need a database migrates the template once for the whole run, under a file lock; every session then has
PostgreSQL copy it (`CREATE DATABASE ... TEMPLATE`), which takes a fraction of a second where running the
migrations took each session seconds of CPU.

A session's database goes at its end without the session waiting for it (`session_database_drop`): DROP
DATABASE forces an immediate checkpoint, which fsyncs every file written since the last one, thousands after
the transactional tests' flushes (7.8 s of 8.1 s in the server's log); the last session to finish waited
for it before the run could end.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
XDIST_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
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


def template_database_clone(*, verbosity: int) -> str:
    """Give this session its test database (pytest-django's `test_…_gwN`) as a copy of the run's template
    `test_…`, migrating the template first when no session of this run has; the database name the settings
    had before, for `destroy_test_db`."""
    from django.conf import settings
    from django.db import connection

    params = connection.settings_dict
    session_name = params["TEST"]["NAME"]  # pytest-django gave it this session's suffix
    template_name = session_name.removesuffix(f"_{XDIST_WORKER}")
    original_name = params["NAME"]
    # One lock (and note of the run that built the template) per server and template: other checkouts'
    # runs on their own servers do not wait for this one.
    server = repr((params.get("HOST"), params.get("PORT"), (params.get("OPTIONS") or {}).get("host"), template_name))
    key = hashlib.sha256(server.encode()).hexdigest()[:16]
    with (Path(tempfile.gettempdir()) / f"switchboard-tests-template-{key}.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the copies wait too: no session is connected to the template then
        lock.seek(0)
        if lock.read() != XDIST_RUN:  # a template of an earlier run, or none: (re)create and migrate it
            params["TEST"]["NAME"] = template_name
            connection.creation.create_test_db(verbosity=verbosity, autoclobber=True, serialize=False)
            lock.seek(0)
            lock.truncate()
            lock.write(XDIST_RUN)
            lock.flush()
        else:
            params["NAME"] = template_name
        connection.creation._clone_test_db(XDIST_WORKER, verbosity)  # closes this connection to the template
    params["NAME"] = params["TEST"]["NAME"] = settings.DATABASES["default"]["NAME"] = session_name
    return original_name


def session_database_drop(*, original_name: str) -> None:
    """Drop this session's test database without waiting for it, and give the settings back `original_name`.

    The database is renamed first (at once; as DROP, it waits for the session's last connections to go), then
    a detached process drops it: nothing can connect to the new name, and the next run may create the old
    name again while the drop is still running."""
    from django.conf import settings
    from django.db import connection

    params = connection.settings_dict
    session_name = params["NAME"]
    doomed = f"{session_name}_dropped_{XDIST_RUN[:8]}"
    quote = connection.ops.quote_name
    connection.close()
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {quote(session_name)} RENAME TO {quote(doomed)}")
    host = (params.get("OPTIONS") or {}).get("host") or params.get("HOST") or ""
    server = {"user": params.get("USER"), "password": params.get("PASSWORD"), "host": host, "port": params.get("PORT")}
    conninfo = make_conninfo(dbname="postgres", **{key: value for key, value in server.items() if value})
    drop = "import sys, psycopg; psycopg.connect(sys.argv[1], autocommit=True).execute(sys.argv[2])"
    subprocess.Popen(
        [sys.executable, "-c", drop, conninfo, f"DROP DATABASE IF EXISTS {quote(doomed)}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    params["NAME"] = settings.DATABASES["default"]["NAME"] = original_name
