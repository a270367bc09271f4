"""Who may do what in a project: the operator's membership role, read per project.

Viewers look and export; operators also change settings, run actions, take chats over and reply;
owners also delete and manage members. Superusers may do everything everywhere.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

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


def request_has_role(request: HttpRequest, *, role: str, project_id: int | None = None) -> bool:
    """`user_has_role` for the request's user, asked once per request: a console page checks the same rights
    for every model of its menu (about a hundred queries a page otherwise). Keyed by the user too: a login
    changes `request.user` mid-request."""
    asked: dict[tuple[object, str, int | None], bool] = request.__dict__.setdefault("_roles_asked", {})
    key = (request.user.pk, role, project_id)
    if key not in asked:
        asked[key] = user_has_role(user=request.user, role=role, project_id=project_id)
    return asked[key]


def request_is_member(request: HttpRequest) -> bool:
    """`user_is_member` for the request's user, asked once per request (each model's menu entry asks it)."""
    asked: dict[object, bool] = request.__dict__.setdefault("_membership_asked", {})
    if request.user.pk not in asked:
        asked[request.user.pk] = user_is_member(user=request.user)
    return asked[request.user.pk]
