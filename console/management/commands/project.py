"""`manage.py project create|set|list|show|webhook`: manage tenants from the shell."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.webhook_registration import WebhookRegistrationError, project_register_webhook, project_webhook_url
from tenants.models import Project
from tenants.selectors import ProjectNotFound, project_get_by_slug, project_list
from tenants.services import SETTABLE_FIELDS, ProjectConfigError, project_create, project_set

# Settings whose values are never printed, not even right after they were set.
SECRET_SETTINGS = ("bot_token", "webhook_secret")
# What `show` prints; the token and the webhook secret are only ever reported as set or not.
SHOWN_FIELDS = [
    "slug", "name", "kind", "language", "bot_username", "bot_id", "lead_group_id", "start_reply",
    "price_url", "model_toolcaller", "model_extract", "model_summary", "weekly_budget_usd", "weekly_cap_usd",
    "followup_steps", "quiet_hours_start", "quiet_hours_end", "timezone", "similarity_threshold",
    "webhook_registered_at", "created_at", "deleted_at",
]  # fmt: skip


class Command(BaseCommand):
    help = "Create, configure, list and show projects, and register their Telegram webhooks."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)

        create = commands.add_parser("create", help="Create a project (a secret is generated when not given).")
        create.add_argument("--slug", required=True)
        create.add_argument("--kind", required=True, choices=Project.Kind.values)
        create.add_argument("--token", required=True, help="The bot token from @BotFather.")
        create.add_argument("--language", default=Project.Language.EN, choices=Project.Language.values)
        create.add_argument("--name", default="")
        create.add_argument("--lead-group", type=int, default=None, help="Telegram chat id of the lead group.")
        create.add_argument("--prompt-file", type=Path, default=None, help="A file with the project's prompt.")
        create.add_argument("--start-reply", default="", help="The greeting sent on /start.")
        create.add_argument("--webhook-secret", default=None)

        setter = commands.add_parser("set", help=f"Set one setting: {', '.join(sorted(SETTABLE_FIELDS))}.")
        setter.add_argument("slug")
        setter.add_argument("key", choices=sorted(SETTABLE_FIELDS), metavar="KEY")
        setter.add_argument("value")

        commands.add_parser("list", help="List projects.").add_argument(
            "--all", action="store_true", help="Include deleted projects."
        )
        commands.add_parser("show", help="Show one project's settings.").add_argument("slug")
        commands.add_parser(
            "webhook", help="Verify the token with getMe and register the webhook with the project's secret."
        ).add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"handle_{options['action']}")(options)
        except (ProjectConfigError, WebhookRegistrationError) as exc:
            raise CommandError(str(exc)) from None
        except ProjectNotFound as exc:
            raise CommandError(f"no project with slug {exc}") from None

    def handle_create(self, options: dict[str, Any]) -> None:
        prompt = ""
        if options["prompt_file"] is not None:
            try:
                prompt = options["prompt_file"].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read the prompt file: {exc}") from None
        project = project_create(
            slug=options["slug"],
            kind=options["kind"],
            token=options["token"],
            language=options["language"],
            name=options["name"],
            lead_group_id=options["lead_group"],
            prompt=prompt,
            start_reply=options["start_reply"],
            webhook_secret=options["webhook_secret"],
        )
        self.stdout.write(self.style.SUCCESS(f"created project {project.slug} ({project.kind}, {project.language})"))
        self.stdout.write(f"webhook url: {project_webhook_url(project=project)}")
        self.stdout.write(f"register it with: python manage.py project webhook {project.slug}")

    def handle_set(self, options: dict[str, Any]) -> None:
        project = project_get_by_slug(slug=options["slug"])
        project_set(project=project, key=options["key"], value=options["value"])
        shown = "(hidden)" if options["key"] in SECRET_SETTINGS else repr(getattr(project, options["key"]))
        self.stdout.write(self.style.SUCCESS(f"{project.slug}: {options['key']} = {shown}"))

    def handle_list(self, options: dict[str, Any]) -> None:
        projects = list(project_list(include_deleted=options["all"]))
        if not projects:
            self.stdout.write("no projects yet; create one with `manage.py project create`")
            return
        self.stdout.write(f"{'SLUG':24} {'KIND':9} {'LANG':4} {'BOT':24} STATUS")
        for project in projects:
            status = "deleted" if project.is_deleted else ("webhook" if project.webhook_registered_at else "-")
            bot = f"@{project.bot_username}" if project.bot_username else "-"
            self.stdout.write(f"{project.slug:24} {project.kind:9} {project.language:4} {bot:24} {status}")

    def handle_show(self, options: dict[str, Any]) -> None:
        project = project_get_by_slug(slug=options["slug"], include_deleted=True)
        for field in SHOWN_FIELDS:
            self.stdout.write(f"{field:22} {getattr(project, field)}")
        self.stdout.write(f"{'bot_token':22} {'set' if project.has_token else 'not set'}")
        self.stdout.write(f"{'webhook_secret':22} {'set' if project.webhook_secret else 'not set'}")
        self.stdout.write(f"{'webhook_url':22} {project_webhook_url(project=project)}")
        self.stdout.write(f"{'prompt':22} {len(project.prompt)} characters")

    def handle_webhook(self, options: dict[str, Any]) -> None:
        project = project_get_by_slug(slug=options["slug"])
        registration = project_register_webhook(project=project)
        self.stdout.write(
            self.style.SUCCESS(f"@{registration.bot_username} verified; webhook registered at {registration.url}")
        )
