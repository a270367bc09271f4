"""Telegram Business chats: customers who write to the business owner's own account, answered by the bot.

A business chat is the customer's private chat with the owner, reached through a connection
(`bots/business_connections.py`); it is keyed by connection and chat id, so it is never the customer's own
chat with the bot. In it:

- the customer's messages are the bot's input, stored as unanswered only while the connection is enabled and
  grants `can_reply` (otherwise kept in the history, unanswered: the bot stays silent);
- the owner's own messages (`from` is the connection's user, no bot sent them on his behalf) are a human
  takeover from Telegram: the chat is paused (no replies, no follow-ups) until the project's
  `business_quiet_seconds` after his last message, his words answer whatever the customer wrote before, and
  the model later reads them as the assistant's own; an operator's takeover in the console is not shortened;
- messages a bot sent on the owner's behalf (our own replies, echoed back) change nothing;
- an edit of a message still waiting for the answer replaces its text; a deleted one is no longer answered.

The beat sweep (`business_pauses_end`) resumes chats whose quiet period is over, and the bot answers what
the customer wrote since the owner's last message.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bots.business_connections import (
    business_connection_for,
    business_connection_store,
    business_connection_unconfirmed,
)
from bots.conversation import describe_message, unanswered_messages
from bots.gateway import IncomingUpdate
from bots.models import BusinessConnection, Chat, Message, Turn
from tenants.models import Project

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class BusinessRoute:
    """What a business message is: the customer's (to answer when `may_reply`), the owner's, or a bot's."""

    author: str  # "customer" | "owner" | "bot"
    may_reply: bool = False


def _log_extra(project: Project, incoming: IncomingUpdate, **more: object) -> dict[str, object]:
    return {"project_id": project.pk, "chat_id": incoming.chat_id,
            "business_connection_id": incoming.business_connection_id, **more}  # fmt: skip


def business_message_route(*, project: Project, incoming: IncomingUpdate) -> BusinessRoute:
    """Who wrote this `business_message`, and whether the bot may answer it."""
    if incoming.sent_by_business_bot:
        return BusinessRoute("bot")
    connection = business_connection_for(project_id=project.pk, connection_id=incoming.business_connection_id)
    if connection is None:
        connection = business_connection_unconfirmed(project=project, connection_id=incoming.business_connection_id)
        logger.warning(
            "business message through a connection Telegram never reported: not answered; the owner reconnects"
            " the bot (or changes one of its rights) in Telegram Business to confirm it",
            extra=_log_extra(project, incoming),
        )
    sender = incoming.sender
    if sender is not None and connection.user_id is not None and sender.user_id == connection.user_id:
        return BusinessRoute("owner")
    if not connection.may_reply:
        reason = "disabled" if not connection.is_enabled else "without the can_reply right"
        logger.info("business message not answered: the connection is %s", reason, extra=_log_extra(project, incoming))
    return BusinessRoute("customer", may_reply=connection.may_reply)


def business_owner_wrote(*, project: Project, chat: Chat, incoming: IncomingUpdate) -> Turn:
    """The owner answered in the chat himself: pause the bot there and record his words as the chat's turn.

    Runs in the webhook's transaction (the chat row is locked by its upsert). Every message of the customer's
    still waiting is answered by him; the pause ends `business_quiet_seconds` after his last message, unless an
    operator has the chat without an end.
    """
    now = timezone.now()
    until = now + timedelta(seconds=project.business_quiet_seconds)
    locked = Chat.objects.select_for_update(of=("self",)).get(pk=chat.pk)
    if locked.paused_at is None:
        Chat.objects.filter(pk=chat.pk).update(paused_at=now, paused_until=until)
    elif locked.paused_until is not None:
        Chat.objects.filter(pk=chat.pk).update(paused_until=max(until, locked.paused_until))
    waiting = list(unanswered_messages(locked))
    words = describe_message(Message(text=incoming.text, files=[f.to_json() for f in incoming.files])).replace(
        "[the user sent", "[the owner sent"
    )
    turn = Turn.objects.create(
        project=project, chat=locked, trigger=Turn.Trigger.OWNER, status=Turn.Status.SENT, finished_at=now,
        user_text="\n\n".join(text for text in map(describe_message, waiting) if text), reply=words,
        sent_message_ids=[incoming.message_id] if incoming.message_id is not None else [],
    )  # fmt: skip
    Message.objects.filter(pk__in=[m.pk for m in waiting]).update(turn=turn)
    logger.info(
        "the business owner wrote: the bot keeps out of the chat until %s", until.isoformat(timespec="seconds"),
        extra=_log_extra(project, incoming, turn_id=turn.pk),
    )  # fmt: skip
    return turn


def business_update_apply(*, project: Project, incoming: IncomingUpdate) -> None:
    """A business update other than a new message: the connection's state, an edit, deleted messages."""
    if incoming.business_connection is not None:
        business_connection_store(project=project, info=incoming.business_connection, update_id=incoming.update_id)
        return
    chat = Chat.objects.filter(
        project=project, telegram_chat_id=incoming.chat_id, business_connection_id=incoming.business_connection_id
    ).first()
    if chat is None:
        return
    waiting = Message.objects.filter(project=project, chat=chat, turn__isnull=True, needs_reply=True)
    if incoming.kind == "edited_business_message" and incoming.message_id is not None:
        # An answered message keeps what it said when it was answered; one still waiting is read as edited.
        edited = waiting.filter(telegram_message_id=incoming.message_id).update(text=incoming.text)
        logger.info("business message edited (%s waiting)", edited, extra=_log_extra(project, incoming))
    elif incoming.kind == "deleted_business_messages":
        dropped = waiting.filter(telegram_message_id__in=incoming.deleted_message_ids).update(needs_reply=False)
        logger.info("business messages deleted, %s no longer answered", dropped, extra=_log_extra(project, incoming))


def business_pauses_end() -> int:
    """Sweep: resume the chats whose quiet period after the owner's last message is over; how many resumed."""
    from bots.tasks import chat_process_task  # tasks import the services: imported when the sweep runs

    now = timezone.now()
    due = list(Chat.objects.filter(paused_until__lte=now).values_list("pk", flat=True)[:BATCH])
    resumed = 0
    for chat_pk in due:
        with transaction.atomic():
            # Conditional: an owner who wrote again meanwhile moved the end, and the chat stays paused.
            if not Chat.objects.filter(pk=chat_pk, paused_until__lte=now).update(paused_at=None, paused_until=None):
                continue
            resumed += 1
            chat = Chat.objects.get(pk=chat_pk)
            logger.info("business owner's quiet period over: the bot answers again",
                        extra={"project_id": chat.project_id, "chat_id": chat.telegram_chat_id})  # fmt: skip
            if unanswered_messages(chat).exists():
                transaction.on_commit(lambda pk=chat_pk: chat_process_task.delay(pk))
    return resumed


def business_connections_of(*, project: Project) -> list[BusinessConnection]:
    return list(BusinessConnection.objects.filter(project=project).order_by("-updated_at"))
