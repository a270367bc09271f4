"""How a project kind plugs into the engine: one protocol, registered once per kind.

A kind (sales in `leads/`, matching in `matching/`) describes everything the engine calls on its behalf
in one `ProjectKind` and registers it in its AppConfig.ready. The engine asks this module, by the
project's kind, for the toolset, the hooks and the handlers; it never reads or writes the keys a kind
keeps in `Chat.state` (the kind's typed `state` class does).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from bots.gateway import IncomingUpdate
from bots.generations import GenerationHandler, register_generation_kind
from bots.models import Chat, Message, Turn
from bots.toolsets import ClockTools, Toolset
from tenants.models import Project

# `/start <args>` taken over by the kind (e.g. connecting a lead group); True when handled.
StartHandler = Callable[[Chat, Message], bool]
# The user's new messages, inside the transaction that marks them processed.
MessagesHook = Callable[[Chat, list[Message]], None]
# An inline-button press, applied idempotently (a redelivered task may call it twice); returns a short
# notice shown to the user, or None.
CallbackHandler = Callable[[Chat, IncomingUpdate], str | None]
# A group message that is not an engine command (e.g. an operator writing in a lead's forum topic), with the
# pk of its stored TelegramUpdate; called inside the webhook's transaction, so it may only store and enqueue.
# True when the kind took it.
GroupMessageHook = Callable[[Project, IncomingUpdate, int], bool]
# A takeover event of a chat ("taken_over", "reply", "handed_back") with the operator's reply turn, if any;
# called after the event is committed.
TakeoverHook = Callable[[Chat, str, Turn | None], None]


class KindState(Protocol):
    """The typed view of the keys a kind keeps in `Chat.state`."""

    @classmethod
    def of(cls, chat: Chat) -> Self: ...

    def as_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GenerationKind:
    handler: GenerationHandler
    on_finished: GenerationHandler | None = None


@dataclass(frozen=True)
class ProjectKind:
    name: str  # a Project.Kind value
    toolset: Callable[[Project], Toolset]
    state: type[KindState]
    on_messages: MessagesHook | None = None
    on_start: StartHandler | None = None
    callbacks: Mapping[str, CallbackHandler] = field(default_factory=dict)  # by button data prefix
    generations: Mapping[str, GenerationKind] = field(default_factory=dict)  # by Generation.Kind
    on_group_message: GroupMessageHook | None = None
    on_takeover: TakeoverHook | None = None


_kinds: dict[str, ProjectKind] = {}


def register_kind(kind: ProjectKind) -> None:
    _kinds[kind.name] = kind
    for name, generation in kind.generations.items():
        register_generation_kind(name, handler=generation.handler, on_finished=generation.on_finished)


def kind_of(project: Project) -> ProjectKind | None:
    return _kinds.get(project.kind)


def toolset_for(project: Project) -> Toolset:
    kind = kind_of(project)
    return kind.toolset(project) if kind is not None else ClockTools()


def start_handle(chat: Chat, message: Message) -> bool:
    kind = kind_of(chat.project)
    return kind is not None and kind.on_start is not None and kind.on_start(chat, message)


def messages_received(chat: Chat, messages: list[Message]) -> None:
    kind = kind_of(chat.project)
    if kind is not None and kind.on_messages is not None:
        kind.on_messages(chat, messages)


def group_message_received(project: Project, incoming: IncomingUpdate, update_pk: int) -> bool:
    kind = kind_of(project)
    hook = kind.on_group_message if kind is not None else None
    return hook is not None and hook(project, incoming, update_pk)


def takeover_happened(chat: Chat, event: str, turn: Turn | None = None) -> None:
    kind = kind_of(chat.project)
    if kind is not None and kind.on_takeover is not None:
        kind.on_takeover(chat, event, turn)


def callback_handler_for(project: Project, data: str) -> CallbackHandler | None:
    kind = kind_of(project)
    return kind.callbacks.get(data.split(":", 1)[0]) if kind is not None else None
