"""The chat's kind-specific state: read-modify-write under a row lock, so concurrent writers merge."""

from typing import Any

from django.db import transaction

from bots.models import Chat


def chat_state_update(*, chat: Chat, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into the stored state (a None value removes the key); updates `chat` too."""
    with transaction.atomic():
        state = Chat.objects.select_for_update().values_list("state", flat=True).get(pk=chat.pk)
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        Chat.objects.filter(pk=chat.pk).update(state=state)
    chat.state = state
    return state
