from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"
    verbose_name = "Matching"

    def ready(self) -> None:
        from bots.kinds import register_kind
        from core.metrics import register_state_gauges
        from matching.gauges import match_gauges
        from matching.kind import MATCHING_KIND

        register_kind(MATCHING_KIND)
        register_state_gauges(match_gauges)
