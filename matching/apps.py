from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"
    verbose_name = "Matching"

    def ready(self) -> None:
        from bots.callbacks import register_callback_handler
        from bots.chat_processing import register_messages_hook, register_start_handler
        from bots.generations import register_generation_kind
        from bots.models import Generation
        from bots.toolsets import register_toolset
        from core.metrics import register_state_gauges
        from matching.engine_hooks import (
            matching_callback_handle,
            matching_messages_hook,
            matching_start_handle,
        )
        from matching.gauges import match_gauges
        from matching.qualifier import qualification_finished, qualification_run
        from matching.toolset import MatchingToolset
        from tenants.models import Project

        register_toolset(Project.Kind.MATCHING, MatchingToolset)
        register_generation_kind(
            Generation.Kind.QUALIFICATION, handler=qualification_run, on_finished=qualification_finished
        )
        register_callback_handler("match", matching_callback_handle)
        register_start_handler(matching_start_handle)
        register_messages_hook(Project.Kind.MATCHING, matching_messages_hook)
        register_state_gauges(match_gauges)
