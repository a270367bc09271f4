"""`manage.py dev`: run the whole platform on one machine (web, worker, beat).

Prepares what a first run needs (Redis, migrations, static files, an admin user, prices, the demo projects),
then supervises the processes with honcho. One copy per data directory (a file lock under var/); the
admin address is printed once the web answers and again when everything is ready; Ctrl-C stops every
process it started, the embedded PostgreSQL and Redis included.
"""

import sys
import threading
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from honcho.manager import Manager

from bots.llm.pricing import model_prices_ensure
from config.admin_account import admin_ensure
from config.dev_instance import AlreadyRunning, instance_lock_acquire
from config.embedded_postgres import embedded_database_stop
from config.env import VAR_DIR, env
from config.local_redis import RedisUnavailable, ensure_redis
from core.metrics import metrics_directory_reset


def worker_command(*, python: str) -> str:
    """The Procfile's worker line: one process, a few threads for short tasks, and the async turn runner
    that holds hundreds of turns. It is the one owner of the embedded vector store (QDRANT_URL unset); with
    a Qdrant server, run more of them (or `-P prefork`) to scale out."""
    return f"{python} -m celery -A config worker -l info -P threads -c 4"  # every queue of config/queues.py


def platform_processes(*, host: str, port: int, python: str) -> dict[str, str]:
    """The development process set; the Procfile holds the production equivalents."""
    return {
        "web": f"{python} -m gunicorn config.wsgi -b {host}:{port} -w 2 --threads 4 --access-logfile -",
        "worker": worker_command(python=python),
        "beat": f"{python} -m celery -A config beat -l info",
    }


class Command(BaseCommand):
    help = "Run web, worker and beat together on embedded defaults; Ctrl-C stops all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo projects.")

    def handle(self, *args: Any, **options: Any) -> None:
        url = f"http://{options['host']}:{options['port']}"
        try:
            lock = instance_lock_acquire(var_dir=VAR_DIR, url=url)
        except AlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        try:
            self._run(url=url, options=options)
        finally:
            lock.release()

    def _run(self, *, url: str, options: dict[str, Any]) -> None:
        try:
            redis_process = ensure_redis(settings.REDIS_URL, workdir=VAR_DIR / "redis")
        except RedisUnavailable as exc:
            raise CommandError(str(exc)) from None
        if redis_process is not None:
            self.stdout.write(f"started redis-server (pid {redis_process.pid}) for {settings.REDIS_URL}")

        metrics_directory_reset()  # counters start from zero with the processes of this run
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        credentials = admin_ensure(var_dir=VAR_DIR)
        model_prices_ensure()  # the maintained price table's new models, on every start
        if not options["no_demo"]:
            call_command("demo")

        password = credentials.password or "(set earlier; `manage.py changepassword admin` to reset)"
        banner = "\n".join([
            f"Switchboard admin: {url}/admin/",
            f"  username: {credentials.username}\n  password: {password}",
            f"  health:   {url}/healthz   readiness: {url}/readyz   API docs: {url}/api/docs",
            "  talk to the demo bot: .venv/bin/python manage.py chat demo-sales   (Ctrl-C here stops everything)",
        ])  # fmt: skip
        self.stdout.write(f"starting web, worker and beat; the admin address follows once {url}/healthz answers")

        manager = Manager()
        for name, command in platform_processes(
            host=options["host"], port=options["port"], python=sys.executable
        ).items():
            manager.add_process(name, command)
        stop_announcing = threading.Event()
        announcer = threading.Thread(
            target=self._announce, args=(url, banner, stop_announcing), name="dev-banner", daemon=True
        )
        announcer.start()
        try:
            manager.loop()
        finally:
            stop_announcing.set()
            if redis_process is not None:
                redis_process.terminate()
            if not env_database_url():
                embedded_database_stop(VAR_DIR / "pgdata")
            if redis_process is not None:
                redis_process.wait(10)
        sys.exit(manager.returncode)

    def _announce(self, url: str, banner: str, stop: threading.Event) -> None:
        """The banner once the web answers, and again when the whole platform is ready (not lost in the logs)."""
        for path, heading in (("/healthz", "web is up"), ("/readyz", "ready: database, Redis and workers answer")):
            while not stop.is_set():
                try:
                    if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                stop.wait(0.5)
            if stop.is_set():
                return
            rule = "=" * 100
            self.stdout.write(self.style.SUCCESS(f"\n{rule}\nSwitchboard {heading}\n{banner}\n{rule}\n"))
            self.stdout.flush()


def env_database_url() -> str:
    """DATABASE_URL as configured; empty means the embedded PostgreSQL this runner owns."""
    return env.str("DATABASE_URL", default="")
