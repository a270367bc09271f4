"""`manage.py telegram_poll [slug...]`: development mode with getUpdates instead of a webhook."""

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from telegram.error import InvalidToken, TelegramError

from bots.event_loop import run_sync
from bots.gateway import MalformedUpdate
from bots.intake import update_accept
from bots.telegram_client import bot_for_token
from core.log_redaction import redact
from tenants.models import Project
from tenants.selectors import project_list

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Poll Telegram with getUpdates for the given projects (all by default); a worker answers them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*")
        parser.add_argument("--poll-timeout", type=int, default=20, help="Long-poll seconds per request.")
        parser.add_argument("--once", action="store_true", help="One round of polling, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        projects = list(project_list().exclude(bot_token=""))
        if options["slugs"]:
            projects = [p for p in projects if p.slug in options["slugs"]]
            missing = set(options["slugs"]) - {p.slug for p in projects}
            if missing:
                raise CommandError(f"no such project(s): {', '.join(sorted(missing))}")
        if not projects:
            raise CommandError("no project with a bot token to poll")
        offsets: dict[int, int] = {}
        for project in projects:
            # getUpdates is refused while a webhook is set.
            run_sync(bot_for_token(project.bot_token).delete_webhook(), timeout=30)
            self.stdout.write(f"polling {project.slug}")
        # Several projects share one loop; each waits at most its share of the long-poll time.
        timeout = max(1, options["poll_timeout"] // len(projects))
        while True:
            for project in projects:
                offsets[project.pk] = self._poll(project, offsets.get(project.pk), timeout)
            if options["once"]:
                return
            time.sleep(0.1)

    def _poll(self, project: Project, offset: int | None, timeout: int) -> int | None:
        bot = bot_for_token(project.bot_token)
        try:
            updates = run_sync(bot.get_updates(offset=offset, timeout=timeout), timeout=timeout + 30)
        except InvalidToken:
            raise CommandError(f"{project.slug}: Telegram rejected the bot token") from None
        except TelegramError as exc:
            logger.warning("getUpdates failed: %s", redact(str(exc)), extra={"project_id": project.pk})
            time.sleep(2)
            return offset
        for update in updates:
            try:
                result = update_accept(project=project, payload=update.to_dict())
            except MalformedUpdate as exc:
                logger.warning("malformed update: %s", exc, extra={"project_id": project.pk})
            else:
                self.stdout.write(f"{project.slug}: update {update.update_id} {result.status}")
            offset = update.update_id + 1
        return offset
