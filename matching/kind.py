"""The matching kind as the engine sees it: its tools, state, hooks, buttons and generation kinds."""

from dataclasses import dataclass
from typing import Any, Self

from bots.kinds import GenerationKind, ProjectKind
from bots.models import Chat, Generation
from matching.engine_hooks import matching_callback_handle, matching_messages_hook, matching_start_handle
from matching.qualifier import qualification_finished, qualification_run
from matching.toolset import MatchingToolset
from tenants.models import Project


@dataclass(frozen=True)
class MatchingState:
    """The matching kind keeps nothing in `Chat.state`: a user's profile and matches are rows of their own."""

    @classmethod
    def of(cls, chat: Chat) -> Self:
        return cls()

    def as_json(self) -> dict[str, Any]:
        return {}


MATCHING_KIND = ProjectKind(
    name=Project.Kind.MATCHING,
    toolset=MatchingToolset,
    state=MatchingState,
    on_messages=matching_messages_hook,
    on_start=matching_start_handle,
    callbacks={"match": matching_callback_handle},
    generations={
        Generation.Kind.QUALIFICATION: GenerationKind(handler=qualification_run, on_finished=qualification_finished)
    },
)
