from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """Platform-level commands (`dev`, `demo`) that belong to no single domain app."""

    name = "config"
    label = "platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.conf import settings

        from core.log_redaction import secret_register

        secret_register(
            settings.SECRET_KEY, settings.FIELD_ENCRYPTION_KEY, settings.QDRANT_API_KEY, settings.METRICS_TOKEN,
            *settings.OPENAI_API_KEYS, *settings.ANTHROPIC_API_KEYS,
        )  # fmt: skip
