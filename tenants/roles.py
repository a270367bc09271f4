"""Who may do what in a project: the operator's membership role, read per project.

Viewers look and export; operators also change settings, run actions, take chats over and reply;
owners also delete and manage members. Superusers may do everything everywhere.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from tenants.models import Membership, Project, ProjectQuerySet
from tenants.selectors import projects_for_user

ROLE_RANK = {Membership.Role.VIEWER: 1, Membership.Role.OPERATOR: 2, Membership.Role.OWNER: 3}


def projects_with_role(*, user: AbstractBaseUser | AnonymousUser, role: str) -> ProjectQuerySet:
    """The projects where the user holds `role` or a higher one (all projects for superusers)."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    allowed = [name for name, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Membership.Role(role)]]
    return Project.objects.filter(memberships__user=user, memberships__role__in=allowed).distinct()


def user_has_role(*, user: AbstractBaseUser | AnonymousUser, role: str, project_id: int | None = None) -> bool:
    """The role (or a higher one) in this project, or in any project when `project_id` is None."""
    projects = projects_with_role(user=user, role=role)
    return projects.filter(pk=project_id).exists() if project_id is not None else projects.exists()


def user_is_member(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    return projects_for_user(user=user).exists()
