"""`manage.py restore FILE`: replace this deployment's data with a backup's (stop web, worker and beat first)."""

from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.backups import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup written by `manage.py backup`: the database (replaced), uploaded files (replaced), then "
        "every project's vector collection rebuilt from the stored chunks. Stop every other process first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="A switchboard-<time>.tar file.")
        parser.add_argument("--yes", action="store_true", help="Do not ask: the current data is replaced.")
        parser.add_argument("--no-media", action="store_true", help="Leave MEDIA_ROOT as it is.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            answer = input(f"Replace this deployment's database and files with {options['path']}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("not restored")
        try:
            result = backup_restore(path=options["path"], media=not options["no_media"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        # A backup of an older release: bring its schema up to this code.
        call_command("migrate", verbosity=0, interactive=False)
        counts = ", ".join(f"{count} {name}" for name, count in result.counts.items())
        self.stdout.write(self.style.SUCCESS(f"restored {options['path'].name}: {counts}"))
        self.stdout.write(
            f"{result.media_files} uploaded files; {result.chunks_uploaded} chunks uploaded to the vector store"
        )
