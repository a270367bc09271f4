"""Writes of tenants: creating and configuring projects."""

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from tenants.models import Project

logger = logging.getLogger(__name__)

# Fields `project set` may change, with how to read the value from text.
SETTABLE_FIELDS: dict[str, str] = {
    "name": "str",
    "language": "str",
    "bot_token": "str",
    "webhook_secret": "str",
    "lead_group_id": "int",
    "prompt": "str",
    "start_reply": "str",
    "unavailable_reply": "str",
    "price_url": "str",
    "model_toolcaller": "str",
    "model_extract": "str",
    "model_summary": "str",
    "weekly_budget_usd": "decimal",
    "weekly_cap_usd": "decimal",
    "followup_steps": "int_list",
    "quiet_hours_start": "str",
    "quiet_hours_end": "str",
    "timezone": "str",
    "similarity_threshold": "float",
    "similarity_threshold_seeker": "float",
    "similarity_threshold_provider": "float",
    "matching_max_open_introductions": "int",
    "matching_interval_minutes": "int",
    "matching_paused": "bool",
    "matching_outcome_delay_hours": "int",
}


class ProjectConfigError(ValueError):
    """Invalid project input; the message is safe to show to the operator."""


def _parse_value(key: str, raw: str) -> Any:
    kind = SETTABLE_FIELDS[key]
    if raw == "" and kind != "str":
        return None
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "decimal":
            return Decimal(raw)
        if kind == "bool":
            return _parse_bool(raw)
        if kind == "int_list":
            return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except (ValueError, InvalidOperation):
        raise ProjectConfigError(f"{key}: {raw!r} is not a valid {kind.replace('_', ' ')}") from None
    return raw


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _parse_bool(raw: str) -> bool:
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise ValueError(raw) from None


def _validate_and_save(project: Project) -> None:
    try:
        project.full_clean()
    except ValidationError as exc:
        messages = [f"{field}: {'; '.join(errors)}" for field, errors in exc.message_dict.items()]
        raise ProjectConfigError(", ".join(messages)) from None
    project.save()


def project_create(
    *,
    slug: str,
    kind: str,
    token: str,
    language: str = Project.Language.EN,
    name: str = "",
    lead_group_id: int | None = None,
    prompt: str = "",
    start_reply: str = "",
    webhook_secret: str | None = None,
) -> Project:
    if Project.objects.filter(slug=slug).exists():
        raise ProjectConfigError(f"a project with slug {slug!r} exists already")
    project = Project(
        slug=slug,
        kind=kind,
        bot_token=token,
        language=language,
        name=name or slug,
        lead_group_id=lead_group_id,
        prompt=prompt,
        start_reply=start_reply,
    )
    if webhook_secret:
        project.webhook_secret = webhook_secret
    _validate_and_save(project)
    logger.info("project created", extra={"project_id": project.pk, "project": slug})
    return project


def project_set(*, project: Project, key: str, value: str) -> Project:
    if key not in SETTABLE_FIELDS:
        raise ProjectConfigError(f"unknown setting {key!r}; one of: {', '.join(sorted(SETTABLE_FIELDS))}")
    setattr(project, key, _parse_value(key, value))
    if key == "bot_token":
        # A new token is a new bot: what we knew of the old one no longer holds.
        project.bot_username, project.bot_id, project.webhook_registered_at = "", None, None
    _validate_and_save(project)
    return project


def project_soft_delete(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())


def project_restore(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=None)
