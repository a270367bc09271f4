"""Admin classes of tenant data show an operator only the projects they belong to (superusers: all).

Rights come from the membership role (tenants.roles), not from Django's per-model permissions: a viewer
of a project sees its data and may export it, an operator also changes it and runs actions, an owner
also deletes. Objects of other projects are simply not in the queryset, so their URLs answer exactly
like missing objects do.
"""

from collections.abc import Callable
from typing import Any

from django.contrib.admin import RelatedOnlyFieldListFilter
from django.db.models import ForeignKey, ManyToManyField, Model, QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponseBase
from unfold.admin import ModelAdmin

from tenants.models import Membership, Project
from tenants.roles import projects_with_role, request_has_role, request_is_member
from tenants.selectors import projects_for_user


def project_id_of(obj: Model, path: str) -> int | None:
    """Follow `path` (Django lookup style, e.g. "project" or "lead__project") to the object's project id."""
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id")


def scope_to_projects(model: type[Model], projects: QuerySet[Project]) -> QuerySet[Any] | None:
    """Rows of a tenant model that belong to `projects`, or None for a model that is not a tenant's."""
    if model is Project:
        return projects
    if any(field.name == "project" for field in model._meta.get_fields()):
        return model._default_manager.filter(project__in=projects)
    return None


class ProjectScopedAdmin(ModelAdmin):
    """Filters every changelist, change view, action, export, filter and choice by the model's project."""

    project_path = "project"
    list_fullwidth = True  # wide tables use the whole screen instead of scrolling inside a narrow column
    # Actions a viewer may run too (they only read); every other action needs the operator role.
    read_only_actions: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        projects = projects_for_user(user=request.user)
        return super().get_queryset(request).filter(**{f"{self.project_path}__in": projects})

    # Rights by role ---------------------------------------------------------------------------------

    def _has_role(self, request: HttpRequest, role: str, obj: Model | None) -> bool:
        project_id = project_id_of(obj, self.project_path) if obj is not None else None
        return request_has_role(request, role=role, project_id=project_id)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or request_is_member(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has_role(request, Membership.Role.VIEWER, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has_role(request, Membership.Role.OPERATOR, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._has_role(request, Membership.Role.OPERATOR, None)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has_role(request, Membership.Role.OWNER, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, tuple[Callable[..., Any], str, str]]:
        actions = super().get_actions(request)
        if request_has_role(request, role=Membership.Role.OPERATOR):
            return actions
        return {name: action for name, action in actions.items() if name in self.read_only_actions}

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponseBase | None:
        # A member who operates one project and only views another acts on the first one's rows only.
        if request.POST.get("action") not in self.read_only_actions:
            operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
            queryset = queryset.filter(**{f"{self.project_path}__in": operated})
        return super().response_action(request, queryset)

    # Choices and filters list only the member's projects and their rows ------------------------------

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        # A plain related-field filter lists every row of the related table (other tenants' projects too).
        scoped: list[Any] = []
        for entry in super().get_list_filter(request):
            field = self._filter_field(entry)
            scoped.append((entry, RelatedOnlyFieldListFilter) if field is not None and field.is_relation else entry)
        return scoped

    def _filter_field(self, entry: Any) -> Any:
        if not isinstance(entry, str) or "__" in entry:
            return None
        try:
            return self.model._meta.get_field(entry)
        except Exception:
            return None

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        scoped = scope_to_projects(db_field.related_model, operated)
        if scoped is not None:
            kwargs["queryset"] = scoped
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: ManyToManyField, request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField | None:
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        scoped = scope_to_projects(db_field.related_model, operated)
        if scoped is not None:
            kwargs["queryset"] = scoped
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class ScopedInlineMixin:
    """An inline on a scoped change page: the parent object is already the member's, so members may look."""

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request_has_role(request, role=Membership.Role.VIEWER)


class ReadOnlyAdminMixin:
    """Records the platform writes (calls, generations); operators look, they do not edit."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
