from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    verbose_name = "Bots and conversations"

    def ready(self) -> None:
        from bots import worker_signals  # noqa: F401 - the turn runner starts and stops with the worker
        from bots.conversation import chat_turn_followup
        from bots.gauges import generation_gauges
        from bots.generations import register_generation_kind
        from bots.models import Generation
        from bots.voice import chat_turn_with_voice_async
        from core.metrics import register_state_gauges

        register_generation_kind(
            Generation.Kind.CHAT_TURN, handler=chat_turn_with_voice_async, on_finished=chat_turn_followup
        )
        register_state_gauges(generation_gauges)
