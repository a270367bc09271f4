"""`manage.py project create|set|list|show|webhook`: manage tenants from the shell."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.webhook_registration import (
    WebhookRegistrationError,
    bot_token_check,
    project_register_webhook,
    project_webhook_url,
)
from knowledge.services import CrawlInputError, source_schedule_set
from tenants.models import Project
from tenants.project_settings import SettingInvalid
from tenants.selectors import ProjectNotFound, project_get_by_slug, project_list
from tenants.services import SETTABLE_FIELDS, ProjectConfigError, project_create, project_set

CRAWL_SCHEDULE = "crawl_schedule"  # off, hourly, daily or weekly for every knowledge source of the project
# What `show` prints; the token and the webhook secret are only ever reported as set or not.
SHOWN_FIELDS = [
    "slug", "name", "kind", "language", "bot_username", "bot_id", "lead_group_id", "start_reply",
    "price_url", "model_toolcaller", "model_extract", "model_summary", "model_transcription",
    "weekly_budget_usd", "weekly_cap_usd",
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

        keys = sorted([*SETTABLE_FIELDS, CRAWL_SCHEDULE])
        setter = commands.add_parser("set", help=f"Set one setting: {', '.join(keys)}.")
        setter.add_argument("slug")
        setter.add_argument("key", choices=keys, metavar="KEY")
        setter.add_argument("value", help="e.g. followup_steps '5m, 15m, 40m, 24h'; an empty string clears")

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
        except (ProjectConfigError, WebhookRegistrationError, CrawlInputError) as exc:
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
        try:  # the format first (no network for a typo), then Telegram itself when it can be reached
            token = SETTABLE_FIELDS["bot_token"].parse(options["token"])
        except SettingInvalid as exc:
            raise CommandError(f"bot_token: {exc}") from None
        bot_username = bot_token_check(token=token)
        project = project_create(
            slug=options["slug"],
            kind=options["kind"],
            token=token,
            language=options["language"],
            name=options["name"],
            lead_group_id=options["lead_group"],
            prompt=prompt,
            start_reply=options["start_reply"],
            webhook_secret=options["webhook_secret"],
        )
        self.stdout.write(self.style.SUCCESS(f"created project {project.slug} ({project.kind}, {project.language})"))
        if bot_username is None:
            self.stdout.write("Telegram could not be reached: the token's format is right; `project webhook` checks it")
        else:
            self.stdout.write(f"token verified with Telegram: @{bot_username}")
        self.stdout.write(f"webhook url: {project_webhook_url(project=project)}")
        self.stdout.write(f"register it with: python manage.py project webhook {project.slug}")

    def handle_set(self, options: dict[str, Any]) -> None:
        project = project_get_by_slug(slug=options["slug"])
        if options["key"] == CRAWL_SCHEDULE:  # the schedule lives on the project's knowledge sources
            count = source_schedule_set(project=project, schedule=options["value"])
            self.stdout.write(self.style.SUCCESS(f"{project.slug}: {count} source(s) re-crawled {options['value']}"))
            return
        if options["key"] == "bot_token":  # a well-formed token Telegram refuses is bad input too
            try:
                bot_token_check(token=SETTABLE_FIELDS["bot_token"].parse(options["value"]))
            except SettingInvalid as exc:
                raise CommandError(f"bot_token: {exc}") from None
        project_set(project=project, key=options["key"], value=options["value"])
        setting = SETTABLE_FIELDS[options["key"]]  # secrets are never printed, not even right after they were set
        shown = "(hidden)" if setting.secret else setting.format(getattr(project, options["key"]))
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
            value = getattr(project, field)
            shown = SETTABLE_FIELDS[field].format(value) if field in SETTABLE_FIELDS else value
            self.stdout.write(f"{field:22} {shown}")
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
