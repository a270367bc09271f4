"""The sales consultant's tools: hybrid_search, set_state, get_state, send_lead (flat string arguments)."""

import json
import re
from typing import Any

from django.utils.translation import gettext_lazy as _

from bots.llm.types import ToolSpec
from bots.texts import in_language
from bots.toolsets import ToolContext, ToolError
from knowledge.search import format_hits_for_model, knowledge_search
from leads.models import Lead
from leads.services import lead_finish, lead_note_customer_message
from leads.state import SalesState, sales_state_update
from tenants.models import Project

CLIENT_STATUSES = ("hot", "cold", "finished")

SALES_PREAMBLE = _(
    "You are a sales consultant. Answer only from the knowledge base: call hybrid_search before you state "
    "prices, terms or facts, and never invent them; if the knowledge base has no answer, say so and offer a "
    "manager's call. Keep your notes with set_state(notes=...): plain text lines such as 'name: ...', "
    "'contact: ...', 'service: ...', 'city: ...', 'date: ...'. The notes are rewritten whole on every call, "
    "so always include everything you want to keep. When you know which service page the customer needs, "
    "set determined_url and pass it as url_filter to later searches. Set client_status to hot or cold as "
    "you learn how interested the customer is. Once you have the customer's name and a way to reach them "
    "and they agree, call send_lead with a short summary for the manager, then tell the customer a manager "
    "will contact them. A user message that starts with [TIMER PING] is not from the customer: they have "
    "been silent. Then either write one short, friendly follow-up, or answer with an empty message to stay "
    "silent, or call send_lead if you already have enough to hand over."
)
FINISHED_ACK = _("Thank you! A manager has your request and will contact you soon.")
CONTACT_BUTTON = _("Share my phone number")

SPECS = [
    ToolSpec(
        "hybrid_search",
        "Search the business's knowledge base (its website and documents). Returns at most 3 passages with "
        "their page URL and score; judge yourself which are relevant.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for, in the customer's language."},
                "top_k": {"type": "integer", "description": "How many results (at most 3)."},
                "url_filter": {"type": "string", "description": "Only this page URL (optional)."},
            },
            "required": ["query"],
        },
    ),
    ToolSpec(
        "set_state",
        "Save what you want to remember. Every argument is a plain string; omit what you do not change.",
        {
            "type": "object",
            "properties": {
                "notes": {"type": "string", "description": "Your whole scratchpad, rewritten (key: value lines)."},
                "determined_url": {"type": "string", "description": "The service page the customer needs."},
                "client_status": {"type": "string", "description": "hot or cold."},
            },
        },
    ),
    ToolSpec("get_state", "Read the current conversation state.", {"type": "object", "properties": {}}),
    ToolSpec(
        "send_lead",
        "Hand the conversation over to the business as a lead (once). Call it when you have the customer's "
        "contact and they want to be contacted.",
        {
            "type": "object",
            "properties": {"summary": {"type": "string", "description": "1-3 sentences for the manager."}},
            "required": ["summary"],
        },
    ),
]
_CONTACT_WORDS = re.compile(r"phone|number|contact|reach you|телефон|номер|контакт|связат", re.IGNORECASE)


def _text(arguments: dict[str, Any], key: str) -> str | None:
    value = arguments.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ToolError(f"{key} must be a plain string")
    return str(value)


class SalesTools:
    def __init__(self, project: Project) -> None:
        self.project = project

    def specs(self) -> list[ToolSpec]:
        return SPECS

    def preamble(self, project: Project) -> str:
        return in_language(project, SALES_PREAMBLE)

    def state_snapshot(self, context: ToolContext) -> str:
        state = SalesState.of(context.chat)
        lines = ["Conversation state:"]
        lines.append(f"- determined_url: {state.determined_url or '(none)'}")
        lines.append(f"- client_status: {state.client_status or '(unknown)'}")
        contact = state.shared_contact
        lines.append(f"- shared contact: {contact['phone_number']} ({contact.get('first_name', '')})" if contact
                     else "- shared contact: (none)")  # fmt: skip
        lines.append(f"- files received: {len(state.files)}")
        if self.project.price_url:
            lines.append(f"- prices page (use as url_filter for price questions): {self.project.price_url}")
        lines.append(f"- lead sent: {'yes' if state.lead_id else 'no'}")
        lines.append("- notes:\n" + (state.notes or "(empty)"))
        return "\n".join(lines)

    def execute(self, name: str, arguments: dict[str, Any], context: ToolContext) -> str:
        handler = getattr(self, f"tool_{name}", None)
        if handler is None:
            raise ToolError(f"unknown tool {name!r}")
        return handler(arguments, context)

    def tool_hybrid_search(self, arguments: dict[str, Any], context: ToolContext) -> str:
        query = _text(arguments, "query")
        if not query or not query.strip():
            raise ToolError("query is required")
        try:
            top_k = int(arguments.get("top_k") or 3)
        except (TypeError, ValueError):
            top_k = 3
        hits = knowledge_search(
            project=self.project, query=query, top_k=top_k, url_filter=_text(arguments, "url_filter") or None
        )
        return format_hits_for_model(hits)

    def tool_set_state(self, arguments: dict[str, Any], context: ToolContext) -> str:
        updates = {key: _text(arguments, key) for key in ("notes", "determined_url", "client_status")}
        updates = {key: value for key, value in updates.items() if value is not None}
        if "client_status" in updates:
            updates["client_status"] = updates["client_status"].strip().lower()
            if updates["client_status"] not in CLIENT_STATUSES:
                raise ToolError(f"client_status must be one of: {', '.join(CLIENT_STATUSES)}")
        if not updates:
            raise ToolError("give at least one of notes, determined_url, client_status")
        sales_state_update(chat=context.chat, **updates)
        return "saved"

    def tool_get_state(self, arguments: dict[str, Any], context: ToolContext) -> str:
        state = SalesState.of(context.chat)
        shown = {"notes": state.notes, "determined_url": state.determined_url, "client_status": state.client_status}
        shown = {key: value for key, value in shown.items() if value}
        return json.dumps({**shown, "lead_sent": state.lead_id is not None}, ensure_ascii=False)

    def tool_send_lead(self, arguments: dict[str, Any], context: ToolContext) -> str:
        summary = _text(arguments, "summary")
        if not summary or not summary.strip():
            raise ToolError("summary is required")
        lead, created = lead_finish(chat=context.chat, summary=summary)
        context.chat.refresh_from_db(fields=["state"])
        return f"lead #{lead.pk} handed to the managers" if created else f"lead #{lead.pk} was already sent"

    def reply_without_model(self, context: ToolContext) -> str | None:
        """After the lead went out the conversation is finished: acknowledge, and refresh the posted lead."""
        lead_id = SalesState.of(context.chat).lead_id
        if not lead_id or context.turn.trigger != context.turn.Trigger.USER:
            return None
        lead = Lead.objects.filter(pk=lead_id).first()
        if lead is not None and lead.status == Lead.Status.SENT and lead_note_customer_message(lead=lead):
            from leads.tasks import lead_refresh_task

            lead_refresh_task.delay(lead.pk)
        return in_language(self.project, FINISHED_ACK)

    def reply_markup(self, context: ToolContext, reply: str) -> dict[str, Any] | None:
        """The one-time "share my phone" button, the first time the bot asks how to reach the customer."""
        state = SalesState.of(context.chat)
        if state.contact_button_sent or state.shared_contact or not _CONTACT_WORDS.search(reply):
            return None
        sales_state_update(chat=context.chat, contact_button_sent=True)
        button = {"text": in_language(self.project, CONTACT_BUTTON), "request_contact": True}
        return {"keyboard": [[button]], "one_time_keyboard": True, "resize_keyboard": True}
