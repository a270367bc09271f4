from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from core.metrics import register_state_gauges
        from knowledge.gauges import source_gauges

        register_state_gauges(source_gauges)
