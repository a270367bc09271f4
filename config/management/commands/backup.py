"""`manage.py backup`: the database, uploaded files and what the vector store needs, in one file."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.backups import BackupError, backup_create, backups_list, backups_prune


class Command(BaseCommand):
    help = "Write a backup (PostgreSQL custom-format dump, uploaded files) to BACKUP_DIR; --prune applies retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", type=Path, default=None, help="Where to write it (default: BACKUP_DIR).")
        parser.add_argument("--prune", action="store_true", help="Then delete backups older than BACKUP_KEEP_DAYS.")
        parser.add_argument("--list", action="store_true", help="Only list the backups in the directory.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for path, taken in backups_list(directory=options["dir"]):
                self.stdout.write(f"{taken:%Y-%m-%d %H:%M} UTC  {path.stat().st_size:>12,} bytes  {path}")
            return
        try:
            result = backup_create(directory=options["dir"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{count} {name}" for name, count in result.counts.items())
        self.stdout.write(self.style.SUCCESS(f"backup written: {result.path} ({result.size_bytes:,} bytes)"))
        self.stdout.write(f"holds {counts}")
        if options["prune"]:
            for path in backups_prune(directory=options["dir"]):
                self.stdout.write(f"removed old backup {path.name}")
