from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from bots.generations import project_over_weekly_cap, project_spend_usd
from tenants.models import Membership, Project
from tenants.selectors import projects_for_user
from tenants.services import WebhookRegistrationError, project_register_webhook, project_restore, project_soft_delete


class ProjectForm(forms.ModelForm):
    # Write-only: the field is never filled from the stored value, and empty input keeps the old token.
    bot_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the current token.",
    )

    class Meta:
        model = Project
        fields = [
            "slug", "name", "kind", "language", "bot_token", "webhook_secret", "lead_group_id", "prompt",
            "start_reply", "unavailable_reply", "price_url", "model_toolcaller", "model_extract", "model_summary",
            "weekly_budget_usd", "weekly_cap_usd", "followup_steps", "quiet_hours_start", "quiet_hours_end",
            "timezone", "similarity_threshold",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["bot_token"] = ""

    def clean_bot_token(self) -> str:
        token = self.cleaned_data["bot_token"].strip()
        if not token and self.instance.pk:
            return Project.objects.get(pk=self.instance.pk).bot_token
        if not token:
            raise forms.ValidationError("A new project needs its bot token.")
        return token


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm
    list_display = ["slug", "name", "kind", "language", "bot_display", "spend_7d", "weekly_budget_usd", "status"]
    list_filter = ["kind", "language"]
    search_fields = ["slug", "name", "bot_username"]
    readonly_fields = ["bot_username", "bot_id", "webhook_registered_at", "deleted_at", "created_at", "updated_at"]
    inlines = [MembershipInline]
    actions = ["register_webhook", "crawl_knowledge", "recrawl_knowledge", "soft_delete", "restore"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return projects_for_user(user=request.user)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        for project in self.get_queryset(request).alive():
            if project_over_weekly_cap(project=project):
                self.message_user(
                    request,
                    f"{project}: LLM work is paused: spend over the last 7 days reached the weekly cap of "
                    f"${project.weekly_cap_usd}. Users get the 'temporarily unavailable' reply; leads still go out.",
                    messages.WARNING,
                )
        return super().changelist_view(request, extra_context)

    @admin.display(description="LLM spend (7 days)")
    def spend_7d(self, project: Project) -> str:
        spend = project_spend_usd(project=project, since=timezone.now() - timedelta(days=7))
        cap = f" / cap ${project.weekly_cap_usd}" if project.weekly_cap_usd else ""
        return f"${spend:.4f}{cap}"

    @admin.display(description="Bot")
    def bot_display(self, project: Project) -> str:
        return f"@{project.bot_username}" if project.bot_username else ("token set" if project.has_token else "-")

    @admin.display(description="Status")
    def status(self, project: Project) -> str:
        if project.is_deleted:
            return "deleted"
        return "webhook registered" if project.webhook_registered_at else "no webhook"

    @admin.action(description="Verify token and register webhook")
    def register_webhook(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            try:
                registration = project_register_webhook(project=project)
            except WebhookRegistrationError as exc:
                self.message_user(request, f"{project.slug}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{project.slug}: @{registration.bot_username} → {registration.url}")

    @admin.action(description="Crawl knowledge base now (new pages)")
    def crawl_knowledge(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._crawl(request, queryset, recrawl=False)

    @admin.action(description="Re-crawl knowledge base (fetch every page again)")
    def recrawl_knowledge(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._crawl(request, queryset, recrawl=True)

    def _crawl(self, request: HttpRequest, queryset: QuerySet[Project], *, recrawl: bool) -> None:
        from knowledge.services import crawl_project

        for project in queryset.filter(kind=Project.Kind.SALES):
            if not project.knowledge_sources.exists():
                self.message_user(request, f"{project.slug}: no sources yet; add some with New crawl", messages.WARNING)
                continue
            job = crawl_project(project=project, recrawl=recrawl)
            self.message_user(request, f"{project.slug}: crawl job #{job.pk} started")

    @admin.action(description="Delete (soft; can be restored)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            project_soft_delete(project=project)
        self.message_user(request, f"{queryset.count()} project(s) deleted; restore them with the Restore action.")

    @admin.action(description="Restore")
    def restore(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            project_restore(project=project)
        self.message_user(request, f"{queryset.count()} project(s) restored.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    autocomplete_fields = ["user", "project"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).filter(project__in=projects_for_user(user=request.user))
