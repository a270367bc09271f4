"""The one-shot lead summary for the manager, written by the model when the agent wrote none."""

import logging

from bots.conversation import chat_thread
from bots.llm.chain import call_tools
from bots.llm.slots import resolve_chain
from bots.llm.types import CallContext, LLMError, LLMMessage, ToolCallRequest
from bots.models import Chat
from leads.state import SalesState

logger = logging.getLogger(__name__)

# The text of a follow-up turn's user message; it is the timer speaking, not the customer.
TIMER_PING = "[TIMER PING]"


def lead_summary_generate(*, chat: Chat) -> str:
    """A one-shot summary of the dialog for the manager, when the agent never wrote one."""
    transcript = "\n".join(
        f"{'Bot' if message.role == 'assistant' else 'Client'}: {block.text}"
        for message in chat_thread(chat=chat)
        for block in message.blocks
        if getattr(block, "text", "") and not block.text.startswith(TIMER_PING)
    )
    notes = SalesState.of(chat).notes
    request = ToolCallRequest(
        system_prefix="Summarize this sales dialog for the manager who will call the customer back: 1-2 short "
        f"paragraphs in the language '{chat.project.language}': what they need, when, where, how to reach them.",
        system_suffix="",
        messages=(LLMMessage.user_text(f"Dialog:\n{transcript}\n\nConsultant's notes:\n{notes}"),),
        max_tokens=400,
    )
    try:
        response = call_tools(
            request=request, chain=resolve_chain(project=chat.project, slot="summary"),
            context=CallContext(purpose="lead_summary", project_id=chat.project_id),
        )  # fmt: skip
        return response.text or notes
    except LLMError as exc:
        logger.error("lead summary failed; the notes stand in", extra={"project_id": chat.project_id,
                                                                        "chat_id": chat.telegram_chat_id})  # fmt: skip
        return notes or f"(no summary: the model was unavailable: {exc})"[:500]
