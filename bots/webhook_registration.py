"""Registering a project's Telegram webhook: verify the token with getMe, then setWebhook with its secret."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError

from bots.event_loop import run_sync
from bots.telegram_client import bot_for_token
from core.log_redaction import redact
from tenants.models import Project

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = [
    "message", "edited_message", "callback_query", "my_chat_member",
    # Telegram Business (bots/business.py)
    "business_connection", "business_message", "edited_business_message", "deleted_business_messages",
]  # fmt: skip


def project_webhook_url(*, project: Project) -> str:
    return f"{settings.PUBLIC_BASE_URL}/telegram/webhook/{project.slug}/"


@dataclass(frozen=True)
class WebhookRegistration:
    bot_username: str
    url: str


class WebhookRegistrationError(RuntimeError):
    """Telegram refused the token or the webhook; the message never contains the token."""


class TokenRejected(WebhookRegistrationError):
    """Telegram answered that the token is not a bot's (getMe refused): bad input, nothing to save."""


def bot_token_check(*, token: str) -> str | None:
    """Ask Telegram (getMe) whose token this is: the bot's username, or None when Telegram cannot be reached.

    The token's format is checked before (tenants.project_settings); this is the check only Telegram can do.
    """
    bot = bot_for_token(token)
    try:
        me = run_sync(bot.get_me(), timeout=settings.TELEGRAM_REQUEST_TIMEOUT_SECONDS)
    except InvalidToken:
        raise TokenRejected("Telegram rejected the bot token (getMe): copy it again from @BotFather") from None
    except (NetworkError, TelegramError, TimeoutError) as exc:
        logger.warning("could not verify a bot token with getMe: %s", redact(str(exc)))
        return None
    return me.username or ""


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
