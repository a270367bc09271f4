from celery import shared_task

from leads.followups import followups_fire_due
from leads.models import Lead
from leads.services import lead_dispatch, lead_refresh, leads_retry_unsent
from leads.topics import lead_topic_sync, topic_inbound_apply, topic_inbound_retry


@shared_task(acks_late=True, time_limit=300, soft_time_limit=280)
def lead_dispatch_task(lead_id: int) -> None:
    lead_dispatch(lead=Lead.objects.select_related("project").get(pk=lead_id))


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def lead_refresh_task(lead_id: int) -> None:
    lead_refresh(lead=Lead.objects.select_related("project").get(pk=lead_id))


@shared_task(time_limit=120, soft_time_limit=110)
def leads_sweep() -> None:
    """Beat: fire due follow-ups and deliver leads a crash left finished but unsent."""
    if followups_fire_due():
        from bots.tasks import generations_process_due_task

        generations_process_due_task.delay()
    leads_retry_unsent()
    topic_inbound_retry()


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def lead_topic_inbound_task(inbound_id: int) -> None:
    """An operator's message in a lead's topic (or a topic's creation): applied once."""
    topic_inbound_apply(inbound_id=inbound_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def lead_topic_sync_task(chat_id: int) -> None:
    """Mirror the customer's new messages and console replies into the lead's topic."""
    lead_topic_sync(chat_id=chat_id)
