"""The project console: settings and prompts, webhook, lead group, knowledge base, dashboard, deletion."""

from datetime import date, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline

from bots.generations import project_over_weekly_cap, project_spend_usd
from bots.selectors import generation_queue_now
from bots.webhook_registration import WebhookRegistrationError, project_register_webhook
from console import chat_admin, platform_admin  # noqa: F401  (register the conversations and accounts admins)
from console.charts import bar_list, column_chart, meter
from console.dashboard import PERIOD_DAYS, PeriodInvalid, dashboard_period, project_dashboard
from console.forms import MembershipForm, ProjectCrawlForm, ProjectForm
from console.project_console import (
    crawl_progress,
    knowledge_sources_summary,
    project_console_links,
    project_model_label,
    project_system_prompt,
)
from console.project_health import project_blockers
from console.project_history import ProjectHistoryAdmin
from knowledge.golden import retrieval_evaluation_request, retrieval_quality
from knowledge.models import RetrievalEvaluation
from knowledge.services import CrawlInputError, crawl_request
from leads.lead_group import connect_link
from matching.funnel import matching_funnel
from tenants.models import Membership, Project
from tenants.roles import projects_with_role, request_has_role, request_is_member, user_has_role
from tenants.selectors import projects_for_user
from tenants.services import project_restore, project_soft_delete

admin.site.site_header = "Switchboard"
admin.site.site_title = "Switchboard console"
admin.site.index_title = "Operator console"


class MembershipInline(TabularInline):
    """The project's members: owners add, re-role and remove them by username; members see who else is in."""

    model = Membership
    form = MembershipForm
    fields = ["username", "role"]
    extra = 0

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # the project page itself is already the member's

    def has_add_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        return obj is not None and user_has_role(user=request.user, role=Membership.Role.OWNER, project_id=obj.pk)

    has_change_permission = has_delete_permission = has_add_permission

    @admin.display(description="Username")
    def username(self, membership: Membership) -> str:  # shown where the member may not edit
        return membership.user.get_username()


def usd_label(value: float) -> str:
    """Cents, or a tenth of a cent for small amounts (a chart of $0.001 days should not read $0.00)."""
    return f"${value:.2f}" if value >= 0.1 or not value else f"${value:.3f}"


@admin.register(Project)
class ProjectAdmin(ProjectHistoryAdmin, ModelAdmin):
    form = ProjectForm
    list_fullwidth = True
    change_form_template = "admin/tenants/project/change_form.html"
    list_display = ["slug", "name", "kind", "language", "bot_display", "spend_7d", "weekly_budget_usd", "status",
                    "console_links"]  # fmt: skip
    list_filter = ["kind", "language"]
    search_fields = ["slug", "name", "bot_username"]
    readonly_fields = ["bot_username", "bot_id", "webhook_registered_at", "deleted_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "kind", "language"]}),
        ("Prompts", {"fields": ["prompt", "start_reply", "unavailable_reply", "price_url"]}),
        ("Models (provider/model; empty: the platform default)",
         {"fields": ["model_toolcaller", "model_extract", "model_summary", "model_transcription"]}),
        ("Budget", {"fields": ["weekly_budget_usd", "weekly_cap_usd"]}),
        ("Follow-ups and quiet hours", {"fields": ["followup_steps", "quiet_hours_start", "quiet_hours_end",
                                                   "timezone"]}),
        ("Telegram", {"fields": ["bot_token", "webhook_secret", "bot_username", "bot_id", "webhook_registered_at",
                                 "lead_group_id"]}),
        ("Telegram Business", {"fields": ["business_quiet_seconds"]}),
        ("Matching", {"fields": ["matching_paused", "matching_max_open_introductions", "matching_interval_minutes",
                                 "similarity_threshold", "similarity_threshold_seeker", "similarity_threshold_provider",
                                 "matching_outcome_delay_hours"], "classes": ["collapse"]}),
        ("Record", {"fields": ["created_at", "updated_at", "deleted_at"], "classes": ["collapse"]}),
    ]  # fmt: skip
    inlines = [MembershipInline]
    # The project console above the settings form, one template per section, in this order. Other areas add
    # theirs here (a crawl report, golden questions): each gets the `console` context and stays self-contained.
    console_sections = [
        "admin/tenants/project/console/banners.html",
        "admin/tenants/project/console/status.html",
        "admin/tenants/project/console/prompt.html",
        "admin/tenants/project/console/knowledge.html",
        "admin/tenants/project/console/retrieval.html",
        "admin/tenants/project/console/lifecycle.html",
    ]
    # Extra cards on the dashboard (a matching funnel, ...): templates that get `project`, `board` and `period`.
    dashboard_sections: list[str] = []
    actions = ["register_webhook", "crawl_knowledge", "recrawl_knowledge", "soft_delete", "restore"]
    owner_actions = ("soft_delete", "restore")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return projects_for_user(user=request.user)

    # Rights by membership role ----------------------------------------------------------------------

    def _role(self, request: HttpRequest, role: str, obj: Project | None) -> bool:
        return request_has_role(request, role=role, project_id=obj.pk if obj is not None else None)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or request_is_member(request)

    def has_view_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        return self._role(request, Membership.Role.VIEWER, obj)

    def has_change_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        return self._role(request, Membership.Role.OPERATOR, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser  # a new tenant is the platform's decision

    def has_delete_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        return request.user.is_superuser  # owners soft-delete; only superusers erase a tenant for good

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not user_has_role(user=request.user, role=Membership.Role.OWNER):
            actions = {name: action for name, action in actions.items() if name not in self.owner_actions}
        if not user_has_role(user=request.user, role=Membership.Role.OPERATOR):
            return {}
        return actions

    def response_action(self, request: HttpRequest, queryset: QuerySet[Project]) -> HttpResponse | None:
        needed = Membership.Role.OWNER if request.POST.get("action") in self.owner_actions else Membership.Role.OPERATOR
        queryset = queryset.filter(pk__in=projects_with_role(user=request.user, role=needed))
        return super().response_action(request, queryset)

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.is_superuser:
            fields += ["slug", "kind"]  # the webhook URL and the agent's tools hang on these
        return fields

    # The changelist -----------------------------------------------------------------------------------

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

    @admin.display(description="Console")
    def console_links(self, project: Project) -> str:
        return format_html(
            '<a href="{}">Dashboard</a> · <a href="{}?project__id__exact={}">Conversations</a>',
            reverse("admin:tenants_project_dashboard", args=[project.pk]),
            reverse("admin:bots_chat_changelist"),
            project.pk,
        )

    # Actions ------------------------------------------------------------------------------------------

    @admin.action(description="Verify token and register webhook")
    def register_webhook(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            self._register_webhook(request, project)

    def _register_webhook(self, request: HttpRequest, project: Project) -> None:
        try:
            registration = project_register_webhook(project=project)
        except WebhookRegistrationError as exc:
            self.message_user(request, f"{project.slug}: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"{project.slug}: token verified: @{registration.bot_username}; "
                                       f"webhook registered at {registration.url}")  # fmt: skip

    @admin.action(description="Crawl knowledge base now (new pages)")
    def crawl_knowledge(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._crawl(request, queryset, recrawl=False)

    @admin.action(description="Re-crawl knowledge base (fetch every page again)")
    def recrawl_knowledge(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        self._crawl(request, queryset, recrawl=True)

    def _crawl(self, request: HttpRequest, queryset: QuerySet[Project], *, recrawl: bool) -> None:
        for project in queryset.filter(kind=Project.Kind.SALES):
            try:
                job = crawl_request(project=project, all_sources=True, recrawl=recrawl)
            except CrawlInputError as exc:
                self.message_user(request, f"Nothing crawled: {exc}", messages.WARNING)
                continue
            self.message_user(request, f"{project.slug}: crawl job #{job.pk} started")

    @admin.action(description="Delete (soft; can be restored)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            project_soft_delete(project=project)
            self.log_change(request, project, "Deleted (soft) from the console")
        self.message_user(request, f"{queryset.count()} project(s) deleted; restore them with the Restore action.")

    @admin.action(description="Restore")
    def restore(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            project_restore(project=project)
            self.log_change(request, project, "Restored from the console")
        self.message_user(request, f"{queryset.count()} project(s) restored.")

    # The console page around the change form ------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        return [
            path("<int:pk>/dashboard/", view(self.dashboard_view), name="tenants_project_dashboard"),
            path("<int:pk>/console/webhook/", view(self.webhook_view), name="tenants_project_webhook"),
            path("<int:pk>/console/crawl/", view(self.crawl_view), name="tenants_project_crawl"),
            path("<int:pk>/console/crawls.json", view(self.crawl_progress_view), name="tenants_project_crawls"),
            path("<int:pk>/console/evaluate/", view(self.evaluate_view), name="tenants_project_evaluate"),
            path("<int:pk>/console/lifecycle/", view(self.lifecycle_view), name="tenants_project_lifecycle"),
            *super().get_urls(),
        ]

    def _project_or_404(self, request: HttpRequest, pk: int, role: str = Membership.Role.VIEWER) -> Project:
        # A foreign project, a missing one and one the member may not act on answer alike.
        project = self.get_queryset(request).filter(pk=pk).first()
        if project is None or not self._role(request, role, project):
            raise Http404("No project matches the given query.")
        return project

    def _back(self, project: Project) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:tenants_project_change", args=[project.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        project = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        if project is not None:
            spend = project_spend_usd(project=project, since=timezone.now() - timedelta(days=7))
            budget = project.weekly_budget_usd
            label = f"${spend:.2f} of the ${budget} weekly budget" if budget else f"${spend:.2f}; no weekly budget set"
            extra_context = {
                **(extra_context or {}),
                "console": {
                    "project": project,
                    "sections": self.console_sections,
                    "links": project_console_links(project=project),
                    "blockers": project_blockers(project=project),
                    "model": project_model_label(project=project),
                    "prompt": project_system_prompt(project=project),
                    "connect_link": connect_link(project) if project.kind == Project.Kind.SALES else None,
                    "spend_meter": meter(
                        float(spend), float(budget) if budget else None, title="LLM spend, 7 days", label=label
                    ),
                    "sources": knowledge_sources_summary(project=project),
                    "crawls": crawl_progress(project=project),
                    "retrieval": retrieval_quality(project=project) if project.kind == Project.Kind.SALES else None,
                    "crawl_form": ProjectCrawlForm(),
                    "can_operate": self._role(request, Membership.Role.OPERATOR, project),
                    "can_own": self._role(request, Membership.Role.OWNER, project),
                },
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def webhook_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        project = self._project_or_404(request, pk, Membership.Role.OPERATOR)
        if request.method == "POST":
            self._register_webhook(request, project)
        return self._back(project)

    def crawl_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        project = self._project_or_404(request, pk, Membership.Role.OPERATOR)
        if request.method != "POST":
            return self._back(project)
        if project.kind != Project.Kind.SALES:
            self.message_user(request, "Only sales projects have a knowledge base.", messages.ERROR)
            return self._back(project)
        form = ProjectCrawlForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            self.message_user(request, f"Nothing crawled: {errors}", messages.ERROR)
            return self._back(project)
        urls, sitemap, recrawl = form.cleaned_data["urls"], form.cleaned_data["sitemap"], form.cleaned_data["recrawl"]
        try:
            job = crawl_request(project=project, urls=urls, sitemap=sitemap, all_sources=not (urls or sitemap),
                                recrawl=recrawl)  # fmt: skip
        except CrawlInputError as exc:
            self.message_user(request, f"Nothing crawled: {exc}", messages.ERROR)
            return self._back(project)
        self.message_user(request, f"Crawl job #{job.pk} started; its progress updates on this page.")
        return HttpResponseRedirect(reverse("admin:tenants_project_change", args=[project.pk]) + "#knowledge")

    def evaluate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        project = self._project_or_404(request, pk, Membership.Role.OPERATOR)
        if request.method != "POST":
            return self._back(project)
        if not project.golden_questions.exists():
            self.message_user(request, "No golden questions to evaluate: save some from the search playground.",
                              messages.WARNING)  # fmt: skip
            return self._back(project)
        retrieval_evaluation_request(project=project, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
        self.message_user(request, "Evaluation of the golden questions started; reload in a moment for its scores.")
        return HttpResponseRedirect(reverse("admin:tenants_project_change", args=[project.pk]) + "#retrieval")

    def crawl_progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        project = self._project_or_404(request, pk)
        return JsonResponse({"jobs": crawl_progress(project=project)})

    def lifecycle_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        project = self._project_or_404(request, pk, Membership.Role.OWNER)
        if request.method == "POST" and request.POST.get("do") == "delete":
            project_soft_delete(project=project)
            self.log_change(request, project, "Deleted (soft) from the console")
            self.message_user(request, f"{project.slug} deleted: its bot no longer answers. Restore it here.")
        elif request.method == "POST" and request.POST.get("do") == "restore":
            project_restore(project=project)
            self.log_change(request, project, "Restored from the console")
            self.message_user(request, f"{project.slug} restored.")
        return self._back(project)

    def dashboard_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        project = self._project_or_404(request, pk)
        name = request.GET.get("period", "week")
        error = ""
        try:
            start = date.fromisoformat(request.GET["start"]) if request.GET.get("start") else None
            end = date.fromisoformat(request.GET["end"]) if request.GET.get("end") else None
            period = dashboard_period(project=project, name=name, start=start, end=end)
        except (ValueError, PeriodInvalid) as exc:
            error = f"Showing the last week instead: {exc}"
            period = dashboard_period(project=project, name="week")
        board = project_dashboard(project=project, period=period)
        daily_budget = float(project.weekly_budget_usd) / 7 if project.weekly_budget_usd else None
        budget = board.budget_for_period_usd
        charts = {
            "messages": column_chart(
                [(day.strftime("%d %b"), count) for day, count in board.messages_per_day], title="Messages per day"
            ),
            "spend": column_chart(
                [(day.strftime("%d %b"), float(spend)) for day, spend in board.spend_per_day],
                title="LLM spend per day (USD)", value_label=usd_label,
                reference=(f"daily budget ${daily_budget:.2f}", daily_budget) if daily_budget else None,
            ),
            "budget": meter(float(board.spend_usd), float(budget) if budget else None, title="Spend against budget",
                            label=f"${board.spend_usd:.2f} of ${budget} (the weekly budget over this period)"
                            if budget else f"${board.spend_usd:.2f}; no weekly budget set"),
            "leads": bar_list(sorted(board.leads_by_client_status.items()), title="Leads by client status"),
            "matches": bar_list(sorted(board.matches_by_status.items()), title="Matches by status"),
            "latency": bar_list(
                [("p50", board.latency_p50_s or 0), ("p95", board.latency_p95_s or 0)] if board.latency_samples else [],
                title="Reply latency (seconds)", value_label=lambda v: f"{v:.1f} s",
            ),
        }  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": f"{project} · dashboard",
            "project": project,
            "opts": self.model._meta,
            "original": project,  # the breadcrumbs: Tenants › Projects › this project
            "links": project_console_links(project=project),
            "banner_context": {"blockers": project_blockers(project=project)},
            "dashboard_sections": self.dashboard_sections,
            "board": board,
            "queue": generation_queue_now(project=project),
            "charts": charts,
            "periods": [*list(PERIOD_DAYS), "custom"],
            "error": error,
            "start": request.GET.get("start", ""),
            "end": request.GET.get("end", ""),
            "matching_funnel": matching_funnel(project=project) if project.kind == Project.Kind.MATCHING else None,
        }
        return TemplateResponse(request, "admin/tenants/project/dashboard.html", context)


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    autocomplete_fields = ["user", "project"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).filter(project__in=projects_for_user(user=request.user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or request_is_member(request)

    def has_view_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return request.user.is_superuser or request_is_member(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return request.user.is_superuser

    has_delete_permission = has_change_permission
