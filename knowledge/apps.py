from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from bots.chat_processing import terminal_session_hooks
        from core.metrics import register_state_gauges
        from knowledge import worker_signals  # noqa: F401 - connects the store owner's worker signal
        from knowledge.gauges import source_gauges
        from knowledge.store_owner import store_owner_claim_for_terminal

        terminal_session_hooks.append(store_owner_claim_for_terminal)
        register_state_gauges(source_gauges)
