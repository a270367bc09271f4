import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from tenants.encryption import EncryptedTextField
from tenants.project_settings import (
    MAX_BUSINESS_QUIET_SECONDS,
    MAX_MATCHING_INTERVAL_MINUTES,
    MAX_OPEN_INTRODUCTIONS,
    MAX_OUTCOME_DELAY_HOURS,
    MIN_BUSINESS_QUIET_SECONDS,
    validate_bot_token,
    validate_embedding_adapter,
    validate_followup_steps,
    validate_model_chain,
    validate_similarity_threshold,
    validate_timezone,
)

DEFAULT_FOLLOWUP_STEPS = [300, 900, 2400, 86400]  # seconds: 5 min, 15 min, 40 min, 24 h


def default_followup_steps() -> list[int]:
    return list(DEFAULT_FOLLOWUP_STEPS)


def generate_webhook_secret() -> str:
    # Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and -.
    return secrets.token_urlsafe(32)


class ProjectQuerySet(models.QuerySet["Project"]):
    def alive(self) -> "ProjectQuerySet":
        return self.filter(deleted_at__isnull=True)


class Project(models.Model):
    """A tenant: one Telegram bot of one kind, with its prompts, models, budget and CRM target."""

    class Kind(models.TextChoices):
        SALES = "sales", "Sales consultant"
        MATCHING = "matching", "Matching"

    class Language(models.TextChoices):
        EN = "en", "English"
        RU = "ru", "Русский"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.EN)

    bot_token = EncryptedTextField(
        blank=True, validators=[validate_bot_token], help_text="Write-only; never shown back."
    )
    webhook_secret = models.CharField(max_length=256, default=generate_webhook_secret)
    bot_username = models.CharField(max_length=64, blank=True)
    bot_id = models.BigIntegerField(null=True, blank=True)
    webhook_registered_at = models.DateTimeField(null=True, blank=True)

    lead_group_id = models.BigIntegerField(
        "lead group chat id", null=True, blank=True, help_text="Telegram chat id of the lead group."
    )
    prompt = models.TextField(blank=True, help_text="The project's own instructions to the model.")
    start_reply = models.TextField(blank=True, help_text="Greeting sent on /start.")
    unavailable_reply = models.TextField(
        blank=True, help_text="Sent while LLM work is paused (weekly cap reached). Empty: the default text."
    )
    price_url = models.URLField("price page URL", blank=True, help_text="Page with prices, hinted to the sales agent.")

    model_toolcaller = models.CharField(
        "tool-calling model",
        max_length=200,
        blank=True,
        validators=[validate_model_chain],
        help_text="provider/model; empty: default.",
    )
    model_extract = models.CharField(
        "extraction model",
        max_length=200,
        blank=True,
        validators=[validate_model_chain],
        help_text="provider/model; empty: default.",
    )
    model_summary = models.CharField(
        "summary model",
        max_length=200,
        blank=True,
        validators=[validate_model_chain],
        help_text="provider/model; empty: default.",
    )
    model_transcription = models.CharField(
        "transcription model",
        max_length=200,
        blank=True,
        validators=[validate_model_chain],
        help_text="provider/model of an OpenAI-compatible /audio/transcriptions endpoint; empty: the default "
        "(TRANSCRIPTION_MODEL; unset: voice messages are not transcribed).",
    )

    weekly_budget_usd = models.DecimalField(
        "weekly budget (USD)",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Spreads LLM work over the week; empty: no spacing.",
    )
    weekly_cap_usd = models.DecimalField(
        "weekly cap (USD)",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Hard cap on spend over the last 7 days; empty: none.",
    )

    followup_steps = models.JSONField(
        "follow-up steps",
        default=default_followup_steps,
        blank=True,
        validators=[validate_followup_steps],
        help_text="Follow-up delays in seconds (typed as 5m, 15m, 40m, 24h).",
    )
    quiet_hours_start = models.TimeField(null=True, blank=True, default="22:00")
    quiet_hours_end = models.TimeField(null=True, blank=True, default="08:00")
    timezone = models.CharField("time zone", max_length=64, default="UTC", validators=[validate_timezone])
    similarity_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_similarity_threshold],
        help_text="Matching: minimum cosine similarity; empty: per embedding model default.",
    )
    similarity_threshold_seeker = models.FloatField(
        null=True, blank=True, validators=[validate_similarity_threshold],
        help_text="Matching: threshold when looking for a seeker's counterparts; empty: similarity_threshold.",
    )  # fmt: skip
    similarity_threshold_provider = models.FloatField(
        null=True, blank=True, validators=[validate_similarity_threshold],
        help_text="Matching: threshold when looking for a provider's counterparts; empty: similarity_threshold.",
    )  # fmt: skip
    matching_max_open_introductions = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(MAX_OPEN_INTRODUCTIONS)],
        help_text="Matching: open introductions a user may have at once; a user at the limit is skipped.",
    )  # fmt: skip
    matching_interval_minutes = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(MAX_MATCHING_INTERVAL_MINUTES)],
        help_text="Matching: how long the loop waits when a round found nobody new (or nobody is active).",
    )  # fmt: skip
    matching_paused = models.BooleanField(default=False, help_text="Matching: no new candidates while set.")
    matching_outcome_delay_hours = models.PositiveIntegerField(
        default=72, validators=[MaxValueValidator(MAX_OUTCOME_DELAY_HOURS)],
        help_text="Matching: hours after a connection until both are asked whether it worked out.",
    )  # fmt: skip
    business_quiet_seconds = models.PositiveIntegerField(
        "business quiet period", default=1800,
        validators=[MinValueValidator(MIN_BUSINESS_QUIET_SECONDS), MaxValueValidator(MAX_BUSINESS_QUIET_SECONDS)],
        help_text="Telegram Business: after the owner writes in a chat himself, the bot stays silent there this "
        "long (seconds; typed as 30m, 2h), from the owner's last message.",
    )  # fmt: skip
    embedding_adapter = models.CharField(
        max_length=16, default="auto", validators=[validate_embedding_adapter],
        help_text="Knowledge search: how texts are formatted for an endpoint embedding model (query/document "
        "prefixes, token budget); auto: by the model's name. Changing it re-embeds the knowledge base.",
    )  # fmt: skip

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectQuerySet.as_manager()
    # Every saved change of a setting or prompt, with who made it; the secrets are never copied into it.
    history = HistoricalRecords(excluded_fields=["bot_token", "webhook_secret", "updated_at"])

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def has_token(self) -> bool:
        return bool(self.bot_token)


class Membership(models.Model):
    """An operator's access to one project."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        OPERATOR = "operator", "Operator"
        OWNER = "owner", "Owner"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project"),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.project} ({self.role})"
