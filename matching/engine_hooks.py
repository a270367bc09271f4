"""How the engine reaches the matching kind: `/start` with a profile, and the `match:` inline buttons."""

import logging

from django.db import transaction

from bots.gateway import IncomingUpdate
from bots.models import Chat, Message
from bots.texts import in_language
from matching import texts
from matching.consent import match_press
from matching.cv import cv_documents_take
from matching.outcomes import outcome_answer
from matching.profiles import Activation, profile_activate, profile_wipe, profile_wipe_confirmation_send
from matching.selectors import profile_for_chat
from tenants.models import Project

logger = logging.getLogger(__name__)

_ACTIVATION_NOTICES = {
    Activation.ACTIVATED: texts.ACTIVATED_NOTICE,
    Activation.DEFERRED: texts.ACTIVATION_DEFERRED_NOTICE,
    Activation.ALREADY_ACTIVE: texts.ALREADY_ACTIVE,
    Activation.NOT_READY: texts.NOT_READY,
}


def matching_start_handle(chat: Chat, message: Message) -> bool:
    """`/start` from a user with a profile asks before wiping it; without one, the engine's reset applies."""
    project = chat.project
    if project.kind != Project.Kind.MATCHING:
        return False
    profile = profile_for_chat(project=project, chat=chat)
    if profile is None or not profile.has_data:
        return False
    # The engine calls this inside its locked transaction: the question goes out once that commits.
    transaction.on_commit(lambda: profile_wipe_confirmation_send(project=project, chat=chat))
    return True


def matching_messages_hook(chat: Chat, messages: list[Message]) -> None:
    """New user messages: a CV among them is read on the worker, and the agent answers once it is read."""
    if chat.project.kind == Project.Kind.MATCHING:
        cv_documents_take(chat=chat, messages=messages)


def matching_callback_handle(chat: Chat, incoming: IncomingUpdate) -> str | None:
    """Route `match:activate`, `match:wipe:yes|no`, `match:accept:<id>`, `match:reject:<id>` and the outcome
    questions `match:talked|worked|why:<outcome id>:<answer>`."""
    project = chat.project
    if project.kind != Project.Kind.MATCHING or incoming.callback is None or incoming.chat_type != "private":
        return None
    parts = incoming.callback.data.split(":")
    match parts:
        case ["match", "activate"]:
            return in_language(project, _ACTIVATION_NOTICES[profile_activate(project=project, chat=chat)])
        case ["match", "wipe", "yes"]:
            wiped = profile_wipe(project=project, chat=chat)
            return in_language(project, texts.WIPE_DONE_NOTICE if wiped else texts.NOTHING_TO_WIPE)
        case ["match", "wipe", "no"]:
            return in_language(project, texts.WIPE_KEPT)
        case ["match", ("accept" | "reject") as answer, match_id] if match_id.isdigit():
            result = match_press(project=project, chat=chat, match_id=int(match_id), accept=answer == "accept")
            return result.notice
        case ["match", ("talked" | "worked" | "why") as step, outcome_id, value] if outcome_id.isdigit():
            answered = outcome_answer(project=project, chat=chat, outcome_id=int(outcome_id), step=step, value=value)
            return answered.notice
    logger.info("unknown matching button %r", incoming.callback.data, extra={"project_id": project.pk})
    return None
