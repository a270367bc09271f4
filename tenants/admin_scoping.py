"""Admin classes of tenant data show an operator only the projects they belong to (superusers: all)."""

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from tenants.selectors import projects_for_user


class ProjectScopedAdmin(admin.ModelAdmin):
    """Filters every changelist, change view, action and export by the model's path to its project."""

    project_path = "project"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        projects = projects_for_user(user=request.user)
        return super().get_queryset(request).filter(**{f"{self.project_path}__in": projects})

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "project":
            kwargs["queryset"] = projects_for_user(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyAdminMixin:
    """Records the platform writes (calls, generations); operators look, they do not edit."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
