from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from core.metrics import register_project_label_resolver
        from tenants.selectors import project_slug

        register_project_label_resolver(project_slug)
