from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator console: project pages, dashboards, conversations, data duties and the demo."""

    name = "console"
    verbose_name = "Console"
