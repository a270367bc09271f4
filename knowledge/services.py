"""Starting crawls from the admin, the `crawl` command and the demo: create the job, enqueue it after commit."""

from collections.abc import Iterable

from django.db import transaction

from knowledge.models import CrawlJob, Source
from knowledge.pipeline import crawl_job_create, knowledge_delete_urls
from knowledge.store_owner import store_reachable_here
from tenants.models import Project


def crawl_start(
    *,
    project: Project,
    urls: Iterable[str] = (),
    sitemap: str | None = None,
    files: Iterable[tuple[str, bytes]] = (),
    sources: Iterable[Source] = (),
    recrawl: bool = False,
    semantic_chunking: bool = False,
) -> CrawlJob:
    from knowledge.tasks import crawl_job_run_task

    job = crawl_job_create(
        project=project, urls=urls, sitemap=sitemap, files=files, sources=sources, recrawl=recrawl,
        semantic_chunking=semantic_chunking,
    )  # fmt: skip
    transaction.on_commit(lambda: crawl_job_run_task.delay(job.pk))
    return job


def crawl_project(*, project: Project, recrawl: bool = False) -> CrawlJob:
    """Crawl every source of the project again (new pages and, with recrawl, changed ones)."""
    return crawl_start(project=project, sources=project.knowledge_sources.all(), recrawl=recrawl)


def knowledge_urls_delete_anywhere(*, project: Project, urls: list[str]) -> int:
    """Remove pages and their chunks here, or through the worker that owns the embedded store."""
    if store_reachable_here():
        return knowledge_delete_urls(project=project, urls=urls)
    from knowledge.tasks import knowledge_delete_urls_task

    return int(knowledge_delete_urls_task.delay(project.pk, urls).get(timeout=110))
