"""The sales kind as the engine sees it: its tools, state, hooks and generation kinds."""

from bots.kinds import GenerationKind, ProjectKind
from bots.models import Chat, Generation, Message
from leads.followups import followup_restart, timer_turn_handle
from leads.lead_group import connect_lead_group
from leads.sales_agent import SalesTools
from leads.state import SalesState, sales_messages_received
from leads.topics import topic_message_receive, topic_messages_received, topic_takeover_event
from tenants.models import Project


def sales_messages_hook(chat: Chat, messages: list[Message]) -> None:
    """The customer wrote: keep their files and shared contact for the lead, restart the follow-ups."""
    sales_messages_received(chat=chat, messages=messages)
    followup_restart(chat, messages)
    topic_messages_received(chat, messages)  # after the lead, the customer's words also go to its topic


SALES_KIND = ProjectKind(
    name=Project.Kind.SALES,
    toolset=SalesTools,
    state=SalesState,
    on_messages=sales_messages_hook,
    on_start=connect_lead_group,
    generations={Generation.Kind.TIMER_TURN: GenerationKind(handler=timer_turn_handle)},
    on_group_message=topic_message_receive,
    on_takeover=topic_takeover_event,
)
