from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self) -> None:
        from bots.chat_processing import register_messages_hook, register_start_handler
        from bots.generations import register_generation_kind
        from bots.models import Generation
        from bots.toolsets import register_toolset
        from core.metrics import register_state_gauges
        from leads.followups import followup_restart, timer_turn_handle
        from leads.gauges import followup_gauges
        from leads.lead_group import connect_lead_group
        from leads.sales_agent import SalesTools
        from tenants.models import Project

        register_toolset(Project.Kind.SALES, SalesTools)
        register_messages_hook(Project.Kind.SALES, followup_restart)
        register_start_handler(connect_lead_group)
        register_generation_kind(Generation.Kind.TIMER_TURN, handler=timer_turn_handle)
        register_state_gauges(followup_gauges)
