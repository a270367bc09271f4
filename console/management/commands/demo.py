"""`manage.py demo`: the demo projects for a first run (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand

from console.demo import demo_ensure


class Command(BaseCommand):
    help = "Create a demo sales project and a demo matching project (kept if they exist)."

    def handle(self, *args: Any, **options: Any) -> None:
        for project, created in demo_ensure():
            state = "created" if created else "exists"
            self.stdout.write(f"demo project {project.slug} ({project.kind}): {state}")
        self.stdout.write(
            "give a demo project a real bot with `manage.py project set <slug> bot_token <T>` "
            "and `manage.py project webhook <slug>`, or talk to it with `manage.py chat <slug>`"
        )
