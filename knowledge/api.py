"""The crawl API for signed-in operators: start a crawl of a project and read its report.

Requests carry the operator's admin session (and its CSRF token); input goes through `crawl_request`,
the same validation as the command and the console. Another tenant's project answers 404, like a
missing one.
"""

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.security import django_auth

from knowledge.models import CrawlJob, Source
from knowledge.services import CrawlInputError, crawl_request
from tenants.models import Membership, Project
from tenants.roles import projects_with_role

router = Router(tags=["knowledge"], auth=django_auth)


class CrawlIn(Schema):
    urls: list[str] = []
    sitemap: str | None = None
    all_sources: bool = False
    recrawl: bool = False
    schedule: Source.Schedule | None = None


class PageLine(Schema):
    url: str
    outcome: str
    reason: str


class CrawlOut(Schema):
    id: int
    status: str
    phase: str
    total_pages: int
    added: int
    changed: int
    unchanged: int
    removed: int
    failed: int
    embedding_calls: int
    error: str
    pages: list[PageLine]


class Problems(Schema):
    problems: list[str]


class Detail(Schema):
    detail: str


def _crawl_out(job: CrawlJob) -> CrawlOut:
    return CrawlOut(
        id=job.pk, status=job.status, phase=job.phase, total_pages=job.total_pages, added=job.pages_added,
        changed=job.pages_changed, unchanged=job.pages_unchanged, removed=job.pages_removed,
        failed=job.pages_failed, embedding_calls=job.embedding_calls, error=job.error,
        pages=[PageLine(url=r.url, outcome=r.outcome, reason=r.reason) for r in job.reports.order_by("url")],
    )  # fmt: skip


def _project(request: HttpRequest, slug: str, role: str) -> Project | None:
    return projects_with_role(user=request.user, role=role).filter(slug=slug).first()


@router.post(
    "/api/projects/{slug}/crawls",
    response={202: CrawlOut, 400: Problems, 401: Detail, 403: Detail, 404: Detail},  # 403: CSRF check failed
    summary="Start a crawl (operators)",
)
def crawl_create(request: HttpRequest, slug: str, body: CrawlIn) -> tuple[int, object]:
    project = _project(request, slug, Membership.Role.OPERATOR)
    if project is None:
        return 404, Detail(detail="no such project")
    try:
        job = crawl_request(
            project=project, urls=body.urls, sitemap=body.sitemap, all_sources=body.all_sources,
            recrawl=body.recrawl, schedule=body.schedule,
        )  # fmt: skip
    except CrawlInputError as exc:
        return 400, Problems(problems=exc.problems)
    return 202, _crawl_out(job)


@router.get(
    "/api/projects/{slug}/crawls/{job_id}",
    response={200: CrawlOut, 401: Detail, 404: Detail},
    summary="A crawl's state and report",
)
def crawl_get(request: HttpRequest, slug: str, job_id: int) -> tuple[int, object]:
    project = _project(request, slug, Membership.Role.VIEWER)
    job = CrawlJob.objects.filter(project=project, pk=job_id).first() if project is not None else None
    if job is None:
        return 404, Detail(detail="no such crawl")
    return 200, _crawl_out(job)
