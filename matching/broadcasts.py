"""Operator broadcasts to selected users: one delivery row per recipient, sent at Telegram's pace.

Each delivery is claimed (pending -> sending) before its message goes out, so a re-run task never sends
twice; a row caught in `sending` by a crash is reported as unknown rather than resent. The message is
stored as a system turn of the chat, so the agent sees it in the history if the user answers it.
"""

import logging
import time
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from bots.conversation import system_reply
from bots.models import Turn
from matching.models import Broadcast, BroadcastDelivery, Profile
from tenants.models import Project

logger = logging.getLogger(__name__)

# Telegram allows about 30 messages per second per bot; 20 per second leaves room for the bot's own replies.
SEND_INTERVAL_SECONDS = 0.05
STALE_SENDING = timedelta(minutes=10)
TEXT_LIMIT = 4096

sleep = time.sleep  # module level so tests can record the waits instead of sleeping

_DELIVERY_STATUS = {
    Turn.Status.SENT: BroadcastDelivery.Status.SENT,
    Turn.Status.SEND_UNKNOWN: BroadcastDelivery.Status.UNKNOWN,
    Turn.Status.FAILED: BroadcastDelivery.Status.FAILED,
}


class BroadcastInvalid(ValueError):
    """The operator's broadcast cannot be sent as given."""


def broadcast_create(
    *, project: Project, profiles: Iterable[Profile], text: str, created_by: AbstractBaseUser | None
) -> Broadcast:
    """Record the broadcast and its recipients (this project's profiles only), then send it on the worker."""
    from matching.tasks import broadcast_send_task

    text = text.strip()
    if not text:
        raise BroadcastInvalid("the message is empty")
    if len(text) > TEXT_LIMIT:
        raise BroadcastInvalid(f"the message is longer than {TEXT_LIMIT} characters")
    recipients = [p for p in profiles if p.project_id == project.pk]
    with transaction.atomic():
        broadcast = Broadcast.objects.create(project=project, text=text, created_by=created_by)
        BroadcastDelivery.objects.bulk_create(
            [BroadcastDelivery(broadcast=broadcast, project=project, profile=p, chat_id=p.chat_id) for p in recipients],
            ignore_conflicts=True,
        )
    transaction.on_commit(lambda: broadcast_send_task.delay(broadcast.pk))
    return broadcast


def broadcast_send(*, broadcast: Broadcast, max_seconds: float = 50.0) -> bool:
    """Send pending deliveries for a bounded time; True when all are done, False when some remain."""
    deadline = time.monotonic() + max_seconds
    BroadcastDelivery.objects.filter(
        broadcast=broadcast, status=BroadcastDelivery.Status.SENDING, sent_at__lt=timezone.now() - STALE_SENDING
    ).update(status=BroadcastDelivery.Status.UNKNOWN, error="interrupted while sending; not resent")
    pending = BroadcastDelivery.objects.filter(broadcast=broadcast, status=BroadcastDelivery.Status.PENDING)
    for delivery in pending.select_related("chat", "chat__project").order_by("pk"):
        if time.monotonic() >= deadline:
            return False
        if _deliver(broadcast, delivery):
            sleep(SEND_INTERVAL_SECONDS)
    Broadcast.objects.filter(pk=broadcast.pk, finished_at__isnull=True).update(finished_at=timezone.now())
    return True


def _deliver(broadcast: Broadcast, delivery: BroadcastDelivery) -> bool:
    """Send one; returns whether a request went to Telegram (which then counts against the rate)."""
    claimed = BroadcastDelivery.objects.filter(pk=delivery.pk, status=BroadcastDelivery.Status.PENDING).update(
        status=BroadcastDelivery.Status.SENDING, sent_at=timezone.now()
    )
    if not claimed:
        return False
    chat = delivery.chat
    if chat.blocked_at is not None:
        BroadcastDelivery.objects.filter(pk=delivery.pk).update(status=BroadcastDelivery.Status.BLOCKED)
        return False
    turn = system_reply(chat=chat, text=broadcast.text)
    turn.refresh_from_db(fields=["status", "error"])
    chat.refresh_from_db(fields=["blocked_at"])
    status = BroadcastDelivery.Status.BLOCKED if chat.blocked_at else _DELIVERY_STATUS.get(turn.status)
    BroadcastDelivery.objects.filter(pk=delivery.pk).update(
        status=status or BroadcastDelivery.Status.FAILED, turn=turn, error=turn.error, sent_at=timezone.now()
    )
    return True
