"""Shared fixtures: the fakes (Telegram, LLM) come as plugins; infrastructure and tenants below."""

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from config.celery_app import app as celery_app
from config.local_redis import RedisUnavailable, start_redis_server
from tests.factories import ProjectFactory
from tests.infrastructure import WORKER_LEASE_SECONDS, CeleryWorker, free_port, redis_answers, worker_environment
from tests.knowledge.site import local_site
from tests.parallel import XDIST_WORKER, session_database_drop, template_database_clone
from tests.reliability.scoreboard import Tally, scoreboard_rows_of, scoreboard_write

pytest_plugins = ["tests.fakes.telegram_api", "tests.fakes.llm_api"]
__all__ = ["local_site"]  # a fixture: the local website crawl tests read

# The test process is no worker: its threads (live servers, the runner pools of turns driven in process,
# the tests' own) keep a connection each, as with DB_POOL_MAX_SIZE=0, and a test that terminates the
# database's connections cannot leave it waiting on a pool's reconnect back-off. The workers it starts keep
# the shipped pool (tests/bots/test_turn_runner.py checks it).
settings.DATABASES["default"].get("OPTIONS", {}).pop("pool", None)
settings.DB_POOL_MAX_SIZE = 0

# A password hash costs 0.4 s of CPU with the shipped PBKDF2 (as it should): every user a test creates and
# every login would pay it. The test process hashes with MD5 first; the shipped hashers still check hashes
# made elsewhere. The processes the tests start (workers, `manage.py dev`) keep the shipped settings.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


def _flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False) -> list[str]:
    """What a transactional test's flush runs: DELETE, not PostgreSQL's TRUNCATE (10 ms against 250 ms for the
    56 tables, nearly empty after a test). TRUNCATE also gives every table and index new files, which the next
    checkpoint must fsync: thousands per session. The FKs are checked at commit (the flush is one transaction),
    so the order of the tables does not matter; the rarer flushes that reset sequences or cascade keep Django's."""
    if reset_sequences or allow_cascade:
        return _truncate_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    quote = self.quote_name
    return [
        "SET CONSTRAINTS ALL DEFERRED;",
        *(f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(quote(t))};" for t in tables),
    ]


_truncate_flush = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _flush_by_delete

# Hypothesis would fail an example that takes over 200 ms, and warn on slow data generation: on a loaded
# machine (parallel processes, the other core busy) that is the machine's speed, not the code's behaviour.
hypothesis_settings.register_profile("switchboard", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("switchboard")

TEST_OPENAI_KEYS = ["sk-test-openai-key-one", "sk-test-openai-key-two"]
TEST_ANTHROPIC_KEYS = ["sk-ant-test-key-one"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run the long variants (slow)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="a long variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


# The reliability scenarios' rows, as the parallel sessions report them (a serial run prints its own).
_parallel_scoreboard: list[Tally] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if XDIST_WORKER:
        return
    _parallel_scoreboard.extend(scoreboard_rows_of(report))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    scoreboard_write(terminalreporter, _parallel_scoreboard)


if XDIST_WORKER:

    @pytest.fixture(scope="session")
    def django_db_setup(request, django_test_environment, django_db_blocker, django_db_modify_db_settings):
        """pytest-django's, except that this session's database is a copy of a template migrated once per run
        (tests/parallel.py; --reuse-db and --nomigrations apply to serial runs). A serial run migrates its one
        database as pytest-django does."""
        from django.db import connection
        from pytest_django.fixtures import _get_databases_for_setup

        verbosity = request.config.option.verbose
        _, serialized_aliases = _get_databases_for_setup(request.session.items)
        with django_db_blocker.unblock():
            original_name = template_database_clone(verbosity=verbosity)
            if serialized_aliases:  # for tests marked serialized_rollback (none yet), as pytest-django does
                connection._test_serialized_contents = connection.creation.serialize_db_to_string()
        yield
        with django_db_blocker.unblock():
            session_database_drop(original_name=original_name)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the session, or one database of REDIS_URL's when none is installed (15, and
    below it one per parallel session: each session flushes its database)."""
    workdir = tmp_path_factory.mktemp("redis")
    try:
        port, process = _redis_server_started(workdir)
    except RedisUnavailable:
        session = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{15 - session}"
        if not redis_answers(url):
            pytest.skip("no redis-server installed and no Redis at REDIS_URL")
        yield url
        return
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def _redis_server_started(workdir: Path, attempts: int = 3) -> tuple[int, subprocess.Popen[bytes]]:
    """A redis-server on a free port; another port when a parallel session took the one picked meanwhile."""
    for _ in range(attempts - 1):
        port = free_port()
        with contextlib.suppress(RedisUnavailable):
            return port, start_redis_server(port=port, workdir=workdir)
        if shutil.which("redis-server") is None:
            break
    port = free_port()
    return port, start_redis_server(port=port, workdir=workdir)


@pytest.fixture(scope="session", autouse=True)
def platform_wired_to_fakes(fake_telegram_server, fake_llm_server, redis_url) -> None:
    """Point every external dependency of the platform at local fakes; nothing reaches the internet."""
    settings.REDIS_URL = redis_url
    celery_app.conf.broker_url = redis_url
    celery_app.conf.result_backend = redis_url
    settings.TELEGRAM_API_BASE_URL = fake_telegram_server.base_url
    settings.OPENAI_BASE_URL = f"{fake_llm_server.base_url}/v1"
    settings.OPENAI_API_KEYS = list(TEST_OPENAI_KEYS)
    settings.ANTHROPIC_BASE_URL = fake_llm_server.base_url
    settings.ANTHROPIC_API_KEYS = list(TEST_ANTHROPIC_KEYS)
    settings.PUBLIC_BASE_URL = "https://switchboard.test"
    settings.QDRANT_PATH = ":memory:"
    settings.QDRANT_URL = ""


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def celery_worker(transactional_db, redis_client, redis_url, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A real Celery worker process on the test database, a private Redis and the fakes."""
    extra = {"QDRANT_PATH": str(tmp_path / "qdrant"), "GENERATION_LEASE_SECONDS": WORKER_LEASE_SECONDS}
    env = worker_environment(redis_url=redis_url, extra=extra)
    worker = CeleryWorker(env=env, log_path=tmp_path / "worker.log").start()
    yield worker
    # The test is over and its database is emptied next: no need to wait for a graceful shutdown (the
    # tests of shutdown itself stop their workers explicitly).
    worker.kill()


@pytest.fixture
def project_a():
    return ProjectFactory(slug="alpha", name="Alpha Cleaning")


@pytest.fixture
def project_b():
    return ProjectFactory(slug="beta", name="Beta Repairs", language="ru")
