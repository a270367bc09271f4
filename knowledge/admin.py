from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from knowledge.forms import CrawlForm, SearchForm
from knowledge.models import Chunk, CrawlJob, Page, Source
from knowledge.services import crawl_start, knowledge_urls_delete_anywhere
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin
from tenants.models import Membership
from tenants.roles import projects_with_role

SEARCH_TIMEOUT_SECONDS = 20


@admin.register(Source)
class SourceAdmin(ProjectScopedAdmin):
    list_display = ["__str__", "project", "kind", "created_at"]
    list_filter = ["project", "kind"]
    actions = ["crawl_selected"]

    @admin.action(description="Crawl the selected sources now")
    def crawl_selected(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for project_id in queryset.values_list("project", flat=True).distinct():
            sources = list(queryset.filter(project_id=project_id))
            job = crawl_start(project=sources[0].project, sources=sources)
            self.message_user(request, f"{sources[0].project}: crawl job #{job.pk} started")


@admin.register(CrawlJob)
class CrawlJobAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "status", "phase", "progress", "chunks_uploaded", "created_at", "finished_at"]
    list_filter = ["project", "status"]
    readonly_fields = ["project", "status", "phase", "progress", "chunks_uploaded", "recrawl", "semantic_chunking",
                       "error", "created_at", "started_at", "heartbeat_at", "finished_at"]  # fmt: skip
    fields = readonly_fields
    change_list_template = "admin/knowledge/crawljob/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("new/", self.admin_site.admin_view(self.new_crawl_view), name="knowledge_crawljob_new"),
            path("search/", self.admin_site.admin_view(self.search_view), name="knowledge_search_playground"),
            *super().get_urls(),
        ]

    def new_crawl_view(self, request: HttpRequest) -> HttpResponse:
        form = CrawlForm(request.POST or None, request.FILES or None, user=request.user)
        # Starting a crawl changes the knowledge base: operators and owners only, of their own projects.
        operated = projects_with_role(user=request.user, role=Membership.Role.OPERATOR)
        form.fields["project"].queryset = form.fields["project"].queryset.filter(pk__in=operated)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            job = crawl_start(
                project=data["project"], urls=data["urls"], sitemap=data["sitemap"] or None,
                files=[(upload.name, upload.read()) for upload in data["files"]], recrawl=data["recrawl"],
                semantic_chunking=data["semantic_chunking"],
            )  # fmt: skip
            self.message_user(request, f"Crawl job #{job.pk} started; its progress updates on this page.")
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
        context = {**self.admin_site.each_context(request), "title": "Search playground", "form": form,
                   "hits": hits, "error": error}  # fmt: skip
        return TemplateResponse(request, "admin/knowledge/search.html", context)


@admin.register(Page)
class PageAdmin(ProjectScopedAdmin):
    list_display = ["url", "project", "status", "title", "error", "uploaded_at"]
    list_filter = ["project", "status"]
    search_fields = ["url", "title"]
    readonly_fields = ["project", "source", "job", "url", "status", "content_type", "http_status", "title", "text",
                       "error", "fetched_at", "extracted_at", "chunked_at", "embedded_at", "uploaded_at"]  # fmt: skip
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
