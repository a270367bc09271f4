"""`manage.py dev`: run the whole platform on one machine (web, worker, beat).

Prepares what a first run needs (Redis, migrations, static files, an admin user, the demo projects),
then supervises the processes with honcho; Ctrl-C stops them all.
"""

import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from honcho.manager import Manager

from config.admin_account import admin_ensure
from config.env import VAR_DIR
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
        if not options["no_demo"]:
            call_command("demo")

        url = f"http://{options['host']}:{options['port']}"
        password = credentials.password or "(set earlier; `manage.py changepassword admin` to reset)"
        self.stdout.write(self.style.SUCCESS(f"\nSwitchboard admin: {url}/admin/"))
        self.stdout.write(f"  username: {credentials.username}\n  password: {password}")
        self.stdout.write(f"  health:   {url}/healthz   readiness: {url}/readyz   API docs: {url}/api/docs\n")

        manager = Manager()
        for name, command in platform_processes(
            host=options["host"], port=options["port"], python=sys.executable
        ).items():
            manager.add_process(name, command)
        try:
            manager.loop()
        finally:
            if redis_process is not None:
                redis_process.terminate()
        sys.exit(manager.returncode)
