"""Writes of tenants: creating and configuring projects, registering their webhooks."""

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError

from bots.event_loop import run_sync
from bots.telegram_client import bot_for_token
from config.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

# Fields `project set` may change, with how to read the value from text.
SETTABLE_FIELDS: dict[str, str] = {
    "name": "str",
    "language": "str",
    "bot_token": "str",
    "webhook_secret": "str",
    "lead_group_id": "int",
    "prompt": "str",
    "start_reply": "str",
    "unavailable_reply": "str",
    "price_url": "str",
    "model_toolcaller": "str",
    "model_extract": "str",
    "model_summary": "str",
    "weekly_budget_usd": "decimal",
    "weekly_cap_usd": "decimal",
    "followup_steps": "int_list",
    "quiet_hours_start": "str",
    "quiet_hours_end": "str",
    "timezone": "str",
    "similarity_threshold": "float",
}

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


class ProjectConfigError(ValueError):
    """Invalid project input; the message is safe to show to the operator."""


def _parse_value(key: str, raw: str) -> Any:
    kind = SETTABLE_FIELDS[key]
    if raw == "" and kind != "str":
        return None
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "decimal":
            return Decimal(raw)
        if kind == "int_list":
            return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except (ValueError, InvalidOperation):
        raise ProjectConfigError(f"{key}: {raw!r} is not a valid {kind.replace('_', ' ')}") from None
    return raw


def _validate_and_save(project: Project) -> None:
    try:
        project.full_clean()
    except ValidationError as exc:
        messages = [f"{field}: {'; '.join(errors)}" for field, errors in exc.message_dict.items()]
        raise ProjectConfigError(", ".join(messages)) from None
    project.save()


def project_create(
    *,
    slug: str,
    kind: str,
    token: str,
    language: str = Project.Language.EN,
    name: str = "",
    lead_group_id: int | None = None,
    prompt: str = "",
    start_reply: str = "",
    webhook_secret: str | None = None,
) -> Project:
    if Project.objects.filter(slug=slug).exists():
        raise ProjectConfigError(f"a project with slug {slug!r} exists already")
    project = Project(
        slug=slug,
        kind=kind,
        bot_token=token,
        language=language,
        name=name or slug,
        lead_group_id=lead_group_id,
        prompt=prompt,
        start_reply=start_reply,
    )
    if webhook_secret:
        project.webhook_secret = webhook_secret
    _validate_and_save(project)
    logger.info("project created", extra={"project_id": project.pk, "project": slug})
    return project


def project_set(*, project: Project, key: str, value: str) -> Project:
    if key not in SETTABLE_FIELDS:
        raise ProjectConfigError(f"unknown setting {key!r}; one of: {', '.join(sorted(SETTABLE_FIELDS))}")
    setattr(project, key, _parse_value(key, value))
    if key == "bot_token":
        # A new token is a new bot: what we knew of the old one no longer holds.
        project.bot_username, project.bot_id, project.webhook_registered_at = "", None, None
    _validate_and_save(project)
    return project


def project_soft_delete(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())


def project_restore(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=None)


def project_webhook_url(*, project: Project) -> str:
    return f"{settings.PUBLIC_BASE_URL}/telegram/webhook/{project.slug}/"


@dataclass(frozen=True)
class WebhookRegistration:
    bot_username: str
    url: str


class WebhookRegistrationError(RuntimeError):
    """Telegram refused the token or the webhook; the message never contains the token."""


def project_register_webhook(*, project: Project) -> WebhookRegistration:
    """Verify the token with getMe, then register the webhook with the project's secret."""
    if not project.bot_token:
        raise WebhookRegistrationError("the project has no bot token; set one with `project set SLUG bot_token T`")
    url = project_webhook_url(project=project)
    bot = bot_for_token(project.bot_token)

    async def register() -> tuple[str, int]:
        me = await bot.get_me()
        await bot.set_webhook(url=url, secret_token=project.webhook_secret, allowed_updates=ALLOWED_UPDATES)
        return me.username or "", me.id

    try:
        username, bot_id = run_sync(register(), timeout=settings.TELEGRAM_REQUEST_TIMEOUT_SECONDS * 3)
    except InvalidToken:
        raise WebhookRegistrationError("Telegram rejected the bot token (getMe failed)") from None
    except BadRequest as exc:  # a subclass of NetworkError in python-telegram-bot, but a refusal
        raise WebhookRegistrationError(f"Telegram refused: {redact(str(exc))}") from None
    except NetworkError as exc:
        raise WebhookRegistrationError(f"could not reach the Bot API: {redact(str(exc))}") from None
    except TelegramError as exc:
        raise WebhookRegistrationError(f"Telegram refused: {redact(str(exc))}") from None

    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(
            bot_username=username, bot_id=bot_id, webhook_registered_at=timezone.now()
        )
    project.refresh_from_db()
    logger.info("webhook registered", extra={"project_id": project.pk, "url": url})
    return WebhookRegistration(bot_username=username, url=url)
