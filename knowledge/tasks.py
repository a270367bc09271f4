"""Knowledge tasks run on the knowledge queue: in local mode the worker process owns the Qdrant store."""

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from knowledge.golden import retrieval_evaluate
from knowledge.models import CrawlJob, RetrievalEvaluation
from knowledge.pipeline import crawl_job_run, knowledge_delete_urls
from knowledge.reembed import knowledge_reembed
from knowledge.search import knowledge_search
from knowledge.services import crawl_schedules_run
from tenants.models import Project

STALE_CRAWL = timedelta(minutes=3)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def crawl_job_run_task(job_id: int) -> None:
    job = CrawlJob.objects.select_related("project").get(pk=job_id)
    if job.status in (CrawlJob.Status.QUEUED, CrawlJob.Status.RUNNING):
        job = crawl_job_run(job=job)
        if job.is_finished:  # the golden questions are asked again in a task of their own: the crawl is not slowed
            retrieval_evaluate_task.delay(job.project_id, RetrievalEvaluation.Trigger.CRAWL, job.pk)


@shared_task(time_limit=600, soft_time_limit=570)
def retrieval_evaluate_task(project_id: int, trigger: str, job_id: int | None = None) -> int | None:
    """Ask the project's golden questions where the store is; returns the evaluation's id (None: no questions)."""
    project = Project.objects.get(pk=project_id)
    job = CrawlJob.objects.filter(pk=job_id, project=project).first() if job_id is not None else None
    evaluation = retrieval_evaluate(project=project, trigger=trigger, job=job)
    return evaluation.pk if evaluation is not None else None


@shared_task(time_limit=60, soft_time_limit=50)
def crawl_jobs_resume_stale() -> None:
    """Beat: a crawl whose worker died (no heartbeat for a while) is resumed where it stopped."""
    stale = CrawlJob.objects.filter(status=CrawlJob.Status.RUNNING, heartbeat_at__lt=timezone.now() - STALE_CRAWL)
    for job_id in stale.values_list("pk", flat=True):
        CrawlJob.objects.filter(pk=job_id).update(heartbeat_at=timezone.now())
        crawl_job_run_task.delay(job_id)


@shared_task(time_limit=60, soft_time_limit=50)
def crawl_schedules_sweep() -> None:
    """Beat: start the incremental re-crawls whose schedule is due (never a second one for busy sources)."""
    crawl_schedules_run()


@shared_task(ignore_result=False, time_limit=30, soft_time_limit=25)
def knowledge_search_task(project_id: int, query: str, top_k: int = 3, url_filter: str | None = None) -> list[Any]:
    """For the web process (search playground): the search runs where the store is."""
    project = Project.objects.get(pk=project_id)
    return [asdict(hit) for hit in knowledge_search(project=project, query=query, top_k=top_k, url_filter=url_filter)]


@shared_task(ignore_result=True, time_limit=3600, soft_time_limit=3500)
def knowledge_reembed_task(project_id: int) -> int:
    """The embedding model changed: embed the project's chunks with the new one where the store is."""
    return knowledge_reembed(project=Project.objects.get(pk=project_id))


@shared_task(ignore_result=False, time_limit=120, soft_time_limit=110)
def knowledge_delete_urls_task(project_id: int, urls: list[str]) -> int:
    """For the web process (admin action): pages and their chunks are removed where the store is."""
    return knowledge_delete_urls(project=Project.objects.get(pk=project_id), urls=urls)
