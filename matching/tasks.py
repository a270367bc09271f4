"""Celery tasks of the matching kind: thin wiring around the services."""

from celery import shared_task

from matching.broadcasts import broadcast_send
from matching.cv import cv_read
from matching.matcher import matching_run
from matching.models import Broadcast
from matching.outcomes import outcomes_ask_due
from matching.profiles import profile_embeddings_retry_due
from matching.reembed import profiles_reembed_stale
from matching.selectors import matching_projects_due, profile_embedding_retries_due
from tenants.models import Project


@shared_task(time_limit=60, soft_time_limit=50)
def matching_tick() -> None:
    """Beat: start the loop of every matching project that has work to try now; ask due outcome questions;
    retry due profile embeddings."""
    for project_id in matching_projects_due().values_list("pk", flat=True):
        matching_run_task.delay(project_id)
    outcomes_ask_task.delay()
    if profile_embedding_retries_due().exists():
        profile_embeddings_retry_task.delay()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def profile_embeddings_retry_task() -> None:
    profile_embeddings_retry_due()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def outcomes_ask_task() -> None:
    outcomes_ask_due()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def cv_read_task(message_id: int) -> None:
    cv_read(message_id=message_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def matching_run_task(project_id: int) -> None:
    project = Project.objects.alive().filter(pk=project_id, kind=Project.Kind.MATCHING).first()
    if project is None:
        return
    if matching_run(project=project, max_seconds=50).more_work:
        matching_run_task.delay(project_id)  # bounded batches: the rest goes on in a fresh task


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def broadcast_send_task(broadcast_id: int) -> None:
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is not None and not broadcast_send(broadcast=broadcast, max_seconds=50):
        broadcast_send_task.delay(broadcast_id)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3540)
def profiles_reembed_task(project_id: int) -> None:
    """The admin's "re-embed the project": every stale profile, in batches (idempotent: re-run is cheap)."""
    project = Project.objects.alive().filter(pk=project_id, kind=Project.Kind.MATCHING).first()
    if project is not None:
        profiles_reembed_stale(project=project)
