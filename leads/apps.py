from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self) -> None:
        from bots.kinds import register_kind
        from core.metrics import register_state_gauges
        from leads.gauges import followup_gauges
        from leads.kind import SALES_KIND

        register_kind(SALES_KIND)
        register_state_gauges(followup_gauges)
