"""Telegram Business connections: which business accounts the project's bot serves, with which rights.

Telegram sends a `business_connection` update when the owner of a Telegram Business account connects the bot
(Settings -> Telegram Business -> Chatbots), changes its rights, or disconnects it (`is_enabled` false). Each
is stored here, one row per project and connection, newest update winning. The bot answers a business chat
only while its connection is enabled and grants `can_reply`: checked when a customer's message is stored and
again before anything is sent through the connection (the outbox), so a right withdrawn mid-turn still holds.
"""

import logging
from datetime import UTC, datetime

from django.db import transaction

from bots.gateway import BusinessConnectionInfo
from bots.models import BusinessConnection
from tenants.models import Project

logger = logging.getLogger(__name__)


def _fit(field: str, value: str) -> str:
    return value[: BusinessConnection._meta.get_field(field).max_length]


def business_connection_store(*, project: Project, info: BusinessConnectionInfo, update_id: int) -> BusinessConnection:
    """Record the connection's state from a `business_connection` update; an older update changes nothing."""
    fields = {
        "user_id": info.owner.user_id, "user_chat_id": info.user_chat_id,
        "username": _fit("username", info.owner.username), "first_name": _fit("first_name", info.owner.first_name),
        "last_name": _fit("last_name", info.owner.last_name), "rights": info.rights, "can_reply": info.can_reply,
        "is_enabled": info.is_enabled, "connected_at": datetime.fromtimestamp(info.date, tz=UTC) if info.date else None,
        "last_update_id": update_id,
    }  # fmt: skip
    with transaction.atomic():
        connection, created = BusinessConnection.objects.select_for_update().get_or_create(
            project=project, connection_id=_fit("connection_id", info.id), defaults=fields
        )
        if not created and connection.last_update_id < update_id:
            for name, value in fields.items():
                setattr(connection, name, value)
            connection.save()
    extra = {"project_id": project.pk, "business_connection_id": info.id, "owner_user_id": info.owner.user_id}
    state = "enabled" if info.is_enabled else "disabled"
    logger.info("business connection %s, may reply: %s", state, connection.may_reply, extra=extra)
    return connection


def business_connection_for(*, project_id: int, connection_id: str) -> BusinessConnection | None:
    return BusinessConnection.objects.filter(project_id=project_id, connection_id=connection_id).first()


def business_connection_unconfirmed(*, project: Project, connection_id: str) -> BusinessConnection:
    """A business message through a connection Telegram never reported (the webhook was registered after the
    owner connected the bot): kept as a disabled row, shown in the console, until a `business_connection`
    update (the owner reconnects, or changes a right) says what the bot may do."""
    connection, _ = BusinessConnection.objects.get_or_create(
        project=project, connection_id=_fit("connection_id", connection_id), defaults={"is_enabled": False}
    )
    return connection


def business_send_refusal(*, project_id: int, connection_id: str) -> str | None:
    """Why nothing may be sent through this connection now, or None when the bot may reply."""
    connection = business_connection_for(project_id=project_id, connection_id=connection_id)
    if connection is None:
        return f"business connection {connection_id} is unknown"
    if not connection.is_enabled:
        return f"business connection {connection_id} is disabled (the owner disconnected the bot)"
    if not connection.can_reply:
        return f"business connection {connection_id} does not grant the bot the right to reply (can_reply)"
    return None
