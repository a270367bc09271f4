from django.apps import AppConfig

from core.log_redaction import secret_register


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_init, post_save
        from simple_history.signals import pre_create_historical_record

        from core.metrics import register_project_label_resolver
        from tenants.history_reasons import history_reason_fill
        from tenants.models import Project
        from tenants.selectors import project_slug

        register_project_label_resolver(project_slug)
        # Every project this process has seen has its secrets blanked in logs and error texts.
        post_init.connect(_project_secrets_register, sender=Project, dispatch_uid="project_secrets_on_load")
        post_save.connect(_project_secrets_register, sender=Project, dispatch_uid="project_secrets_on_save")
        pre_create_historical_record.connect(
            history_reason_fill, sender=Project.history.model, dispatch_uid="project_history_reason"
        )


def _project_secrets_register(instance: object, **kwargs: object) -> None:
    # From __dict__: a deferred field (the webhook loads only pk, slug and secret) must not cost a query.
    fields = instance.__dict__
    secret_register(fields.get("webhook_secret"), fields.get("bot_token"))
