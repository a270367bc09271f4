from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """Platform-level commands (`dev`, `demo`) that belong to no single domain app."""

    name = "config"
    label = "platform"
    verbose_name = "Platform"
