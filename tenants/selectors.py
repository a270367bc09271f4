"""Reads of tenants. Every tenant lookup goes through here, scoped by the asking user."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tenants.models import Project, ProjectQuerySet


class ProjectNotFound(Exception):
    """Raised alike for a missing project and one the caller may not see."""


def project_list(*, include_deleted: bool = False) -> ProjectQuerySet:
    projects = Project.objects.all()
    return projects if include_deleted else projects.alive()


def project_get_by_slug(*, slug: str, include_deleted: bool = False) -> Project:
    try:
        return project_list(include_deleted=include_deleted).get(slug=slug)
    except Project.DoesNotExist:
        raise ProjectNotFound(slug) from None


def projects_for_user(*, user: AbstractBaseUser | AnonymousUser) -> ProjectQuerySet:
    """The projects an operator may see: all for superusers, their memberships otherwise."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_slug(project_id: int) -> str | None:
    return Project.objects.filter(pk=project_id).values_list("slug", flat=True).first()
