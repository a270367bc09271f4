from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Case, QuerySet, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from knowledge.forms import CrawlForm, GoldenQuestionSaveForm, SearchForm
from knowledge.golden import (
    GoldenQuestionInvalid,
    evaluation_regressions,
    golden_question_create,
    retrieval_evaluation_request,
)
from knowledge.models import Chunk, CrawlJob, GoldenQuestion, Page, PageReport, RetrievalEvaluation, Source
from knowledge.selectors import crawl_job_summary, source_warning
from knowledge.services import CrawlInputError, crawl_request, knowledge_urls_delete_anywhere
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin
from tenants.models import Membership
from tenants.project_settings import format_duration
from tenants.roles import projects_with_role

SEARCH_TIMEOUT_SECONDS = 20
REPORT_ORDER = ["failed", "removed", "changed", "added", "unchanged"]


@admin.register(Source)
class SourceAdmin(ProjectScopedAdmin):
    list_display = ["__str__", "project", "kind", "schedule", "last_refreshed_at", "failed_runs", "warning"]
    list_filter = ["project", "kind", "schedule"]
    list_editable = ["schedule"]
    readonly_fields = ["project", "kind", "url", "file", "title", "last_refreshed_at", "last_queued_at", "failed_runs",
                       "last_error", "warning", "created_at"]  # fmt: skip
    fields = ["schedule", *readonly_fields]
    actions = ["crawl_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sources come from a crawl (New crawl, the project console, `manage.py crawl`)

    @admin.display(description="Warning")
    def warning(self, source: Source) -> str:
        return source_warning(source=source) or "-"

    @admin.action(description="Crawl the selected sources now")
    def crawl_selected(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for project_id in queryset.values_list("project", flat=True).distinct():
            sources = list(queryset.filter(project_id=project_id))
            try:
                job = crawl_request(project=sources[0].project, sources=sources)
            except CrawlInputError as exc:
                self.message_user(request, f"{sources[0].project}: nothing crawled: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{sources[0].project}: crawl job #{job.pk} started")


class PageReportInline(admin.TabularInline):
    """Every page the job touched, with what happened to it and why (the crawl report)."""

    model = PageReport
    fields = ["page_link", "outcome", "reason", "http_status", "chunks"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    classes = ["crawl-report"]
    verbose_name = "page"
    verbose_name_plural = "Pages of this crawl"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PageReport]:
        # Failed pages first: they are what an operator has to act on.
        rank = Case(
            *(When(outcome=outcome, then=i) for i, outcome in enumerate(REPORT_ORDER)), default=len(REPORT_ORDER)
        )
        return super().get_queryset(request).select_related("page").annotate(rank=rank).order_by("rank", "url")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # whoever may see the job (scoped by its admin) sees its report

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Page")
    def page_link(self, report: PageReport) -> str:
        if report.page_id is None:
            return report.url
        return format_html('<a href="{}">{}</a>', reverse("admin:knowledge_page_change", args=[report.page_id]),
                           report.url)  # fmt: skip


@admin.register(CrawlJob)
class CrawlJobAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "status_badge", "phase", "report_summary", "chunks_uploaded", "created_at",
                    "took"]  # fmt: skip
    list_filter = ["project", "status", "scheduled"]
    readonly_fields = ["project", "status_badge", "phase", "report_summary", "progress", "error", "took",
                       "embedding_summary", "chunks_uploaded", "recrawl", "scheduled", "semantic_chunking",
                       "created_at", "started_at", "heartbeat_at", "finished_at"]  # fmt: skip
    fields = readonly_fields
    inlines = [PageReportInline]
    change_list_template = "admin/knowledge/crawljob/change_list.html"
    change_form_template = "admin/knowledge/crawljob/change_form.html"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: CrawlJob) -> str:
        return format_html('<span class="crawl-status crawl-status-{}">{}</span>', job.status, job.get_status_display())

    @admin.display(description="Pages")
    def report_summary(self, job: CrawlJob) -> str:
        return crawl_job_summary(job)

    @admin.display(description="Duration", ordering="finished_at")
    def took(self, job: CrawlJob) -> str:
        if job.duration is None:
            return "running" if job.started_at else "-"
        seconds = job.duration.total_seconds()
        return f"{seconds:.1f}s" if seconds < 60 else format_duration(round(seconds))

    @admin.display(description="Embedding")
    def embedding_summary(self, job: CrawlJob) -> str:
        return (f"{job.embedding_calls} call(s), {job.chunks_embedded} chunk(s), {job.embedding_tokens} token(s), "
                f"${job.embedding_cost_usd:.4f}")  # fmt: skip

    def get_urls(self) -> list[URLPattern]:
        return [
            path("new/", self.admin_site.admin_view(self.new_crawl_view), name="knowledge_crawljob_new"),
            path("search/", self.admin_site.admin_view(self.search_view), name="knowledge_search_playground"),
            path("search/golden/", self.admin_site.admin_view(self.golden_save_view), name="knowledge_golden_save"),
            *super().get_urls(),
        ]

    def new_crawl_view(self, request: HttpRequest) -> HttpResponse:
        form = CrawlForm(request.POST or None, request.FILES or None, user=request.user)
        # Starting a crawl changes the knowledge base: operators and owners only, of their own projects.
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        form.fields["project"].queryset = form.fields["project"].queryset.filter(pk__in=operated)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    job = crawl_request(
                        project=data["project"], urls=data["urls"], sitemap=data["sitemap"] or None,
                        files=[(upload.name, upload.read()) for upload in data["files"]], recrawl=data["recrawl"],
                        semantic_chunking=data["semantic_chunking"], schedule=data["schedule"],
                    )  # fmt: skip
            except CrawlInputError as exc:
                form.add_error(None, exc.problems)
            else:
                self.message_user(request, f"Crawl job #{job.pk} started; its report fills in on this page.")
                return HttpResponseRedirect(reverse("admin:knowledge_crawljob_change", args=[job.pk]))
        context = {**self.admin_site.each_context(request), "title": "Crawl pages and documents", "form": form}
        return TemplateResponse(request, "admin/knowledge/form_page.html", context)

    def search_view(self, request: HttpRequest) -> HttpResponse:
        from knowledge.tasks import knowledge_search_task

        form = SearchForm(request.GET or None, user=request.user)
        hits, error = None, ""
        if request.GET and form.is_valid():
            data = form.cleaned_data
            try:
                # The worker owns the Qdrant store (local mode), so the search runs there.
                hits = knowledge_search_task.delay(
                    data["project"].pk, data["query"], 3, data["url_filter"] or None
                ).get(timeout=SEARCH_TIMEOUT_SECONDS)
            except Exception as exc:  # the operator sees why, the page still renders
                error = f"search failed: {type(exc).__name__}: {exc}"
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        can_save = bool(hits) and form.is_valid() and operated.filter(pk=form.cleaned_data["project"].pk).exists()
        context = {**self.admin_site.each_context(request), "title": "Search playground", "form": form,
                   "hits": hits, "error": error, "can_save_golden": can_save}  # fmt: skip
        return TemplateResponse(request, "admin/knowledge/search.html", context)

    def golden_save_view(self, request: HttpRequest) -> HttpResponse:
        """Save the playground's query as a golden question, with the result the operator chose as its page."""
        form = GoldenQuestionSaveForm(request.POST or None, user=request.user)
        # A golden question changes what the console reports: operators and owners only, of their own projects.
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        form.fields["project"].queryset = form.fields["project"].queryset.filter(pk__in=operated)
        playground = reverse("admin:knowledge_search_playground")
        if request.method != "POST" or not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            self.message_user(request, f"Nothing saved: {errors or 'send the form'}", messages.ERROR)
            return HttpResponseRedirect(playground)
        data = form.cleaned_data
        back = f"{playground}?{urlencode({'project': data['project'].pk, 'query': data['question']})}"
        try:
            golden = golden_question_create(project=data["project"], question=data["question"],
                                            expected_url=data["expected_url"], created_by=request.user)  # fmt: skip
        except GoldenQuestionInvalid as exc:
            self.message_user(request, f"Nothing saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(back)
        saved = f'Saved as golden question #{golden.pk}: "{golden.question}" -> {golden.expected_url}'
        self.message_user(request, saved, messages.SUCCESS)
        return HttpResponseRedirect(back)


@admin.register(Page)
class PageAdmin(ProjectScopedAdmin):
    list_display = ["url", "project", "status", "title", "error", "uploaded_at"]
    list_filter = ["project", "status"]
    search_fields = ["url", "title"]
    readonly_fields = ["project", "source", "job", "url", "status", "content_type", "http_status", "title", "text",
                       "error", "version", "etag", "last_modified", "sitemap_lastmod", "content_hash", "gone_count",
                       "fetched_at", "extracted_at", "chunked_at", "embedded_at", "uploaded_at"]  # fmt: skip
    fields = readonly_fields
    actions = ["delete_urls"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, object]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting rows alone would leave chunks in Qdrant
        return actions

    @admin.action(description="Delete the selected URLs and their chunks")
    def delete_urls(self, request: HttpRequest, queryset: QuerySet[Page]) -> None:
        removed = 0
        for project_id in queryset.values_list("project", flat=True).distinct():
            pages = queryset.filter(project_id=project_id)
            removed += knowledge_urls_delete_anywhere(
                project=pages[0].project, urls=list(pages.values_list("url", flat=True))
            )
        self.message_user(request, f"{removed} URL(s) and their chunks removed.", messages.SUCCESS)


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["page", "index", "topic", "embedding_model", "uploaded_at"]
    list_filter = ["project"]
    search_fields = ["topic", "text"]
    exclude = ["embedding"]


@admin.register(GoldenQuestion)
class GoldenQuestionAdmin(ProjectScopedAdmin):
    """Each project's test set: a question and the page that must answer it (also saved from the search playground)."""

    list_display = ["question", "expected_url", "project", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["question", "expected_url"]
    fields = ["project", "question", "expected_url", "created_by", "created_at", "updated_at"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    actions = ["evaluate_projects"]

    def save_model(self, request: HttpRequest, obj: GoldenQuestion, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Evaluate the golden questions of these projects now")
    def evaluate_projects(self, request: HttpRequest, queryset: QuerySet[GoldenQuestion]) -> None:
        for project_id in queryset.values_list("project", flat=True).distinct():
            project = queryset.filter(project_id=project_id).first().project
            retrieval_evaluation_request(project=project, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
            self.message_user(request, f"{project}: evaluation started; its scores appear on the project console.")


@admin.register(RetrievalEvaluation)
class RetrievalEvaluationAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "trigger", "job", "questions", "recall", "mrr_display", "worse",
                    "created_at"]  # fmt: skip
    list_filter = ["project", "trigger"]
    readonly_fields = ["project", "trigger", "job", "previous", "questions", "recall", "mrr_display", "worse",
                       "results", "created_at"]  # fmt: skip
    fields = readonly_fields

    @admin.display(description="Recall@3", ordering="recall_at_3")
    def recall(self, evaluation: RetrievalEvaluation) -> str:
        return f"{evaluation.recall_at_3:.2f}"

    @admin.display(description="MRR", ordering="mrr")
    def mrr_display(self, evaluation: RetrievalEvaluation) -> str:
        return f"{evaluation.mrr:.2f}"

    @admin.display(description="Worse than before")
    def worse(self, evaluation: RetrievalEvaluation) -> str:
        lost = evaluation_regressions(evaluation=evaluation)
        return ", ".join(result.question for result in lost) or "-"
