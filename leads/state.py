"""The sales kind's typed view of `Chat.state`: the only code that knows its keys."""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

from bots.chat_state import chat_state_update
from bots.models import Chat, Message


@dataclass(frozen=True)
class SalesState:
    notes: str = ""  # the agent's scratchpad, rewritten whole by set_state
    determined_url: str = ""
    client_status: str = ""  # hot | cold | finished
    files: list[dict[str, Any]] = field(default_factory=list)  # every file the customer sent, for the lead
    shared_contact: dict[str, Any] | None = None  # from the one-time request_contact button, not in history
    contact_button_sent: bool = False
    lead_id: int | None = None  # set once the lead is finished: the conversation is over

    @classmethod
    def of(cls, chat: Chat) -> Self:
        stored = chat.state or {}
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_KEYS = {f.name for f in fields(SalesState)}


def sales_state_update(*, chat: Chat, **changes: Any) -> SalesState:
    """Merge changes into the chat's stored state under its row lock (a None value removes the key)."""
    unknown = set(changes) - _KEYS
    if unknown:
        raise ValueError(f"not sales state keys: {sorted(unknown)}")
    chat_state_update(chat=chat, changes=changes)
    return SalesState.of(chat)


def sales_messages_received(*, chat: Chat, messages: list[Message]) -> SalesState:
    """Keep the customer's files for the lead, and a shared contact in the state rather than in the history."""
    state = SalesState.of(chat)
    changes: dict[str, Any] = {}
    files = [file for message in messages for file in message.files]
    if files:
        changes["files"] = [*state.files, *files]
    for message in messages:
        if message.contact:
            changes["shared_contact"] = message.contact
            Message.objects.filter(pk=message.pk).update(contact=None, text=message.text or "[shared contact]")
    return sales_state_update(chat=chat, **changes) if changes else state


__all__ = ["SalesState", "sales_messages_received", "sales_state_update"]
