"""Writes of tenants: creating and configuring projects."""

import logging

from django.core.exceptions import ValidationError
from django.utils import timezone

from tenants.models import Project
from tenants.project_settings import PROJECT_SETTINGS, SettingInvalid, setting_parse

logger = logging.getLogger(__name__)

# Fields `project set` may change; each is parsed and validated by its one rule in tenants.project_settings.
SETTABLE_FIELDS = PROJECT_SETTINGS


class ProjectConfigError(ValueError):
    """Invalid project input; the message is safe to show to the operator."""


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
    try:
        parsed = setting_parse(key=key, text=value)
    except SettingInvalid as exc:
        raise ProjectConfigError(str(exc)) from None
    setattr(project, key, parsed)
    if key == "bot_token":
        # A new token is a new bot: what we knew of the old one no longer holds.
        project.bot_username, project.bot_id, project.webhook_registered_at = "", None, None
    _validate_and_save(project)
    return project


def project_soft_delete(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())


def project_restore(*, project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(deleted_at=None)
