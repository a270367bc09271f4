""" "Resend to CRM" in the admin queues the dispatch on the worker and reports; it never posts in the request."""

import pytest
from django.urls import reverse

from leads.models import Lead, LeadDispatch
from leads.services import lead_dispatch
from tests.leads.test_transcript import lead_with_history
from tests.reliability.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = -100700


def test_a_failed_lead_is_resent_by_the_worker_once(admin_client, project_a, project_b, fake_telegram, celery_worker):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    project_a.lead_group_id = GROUP
    project_a.save()
    lead = lead_with_history(project_a, fake=fake_telegram)
    fake_telegram.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    lead_dispatch(lead=lead)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.FAILED
    calls_before = len(fake_telegram.calls)

    response = admin_client.post(
        reverse("admin:leads_lead_changelist"), {"action": "resend_to_crm", "_selected_action": [lead.pk]}, follow=True
    )

    assert "Queued for resending" in response.content.decode()
    wait_until(lambda: Lead.objects.get(pk=lead.pk).status == Lead.Status.SENT, what="the resent lead",
               worker=celery_worker)  # fmt: skip
    group_methods = [call.method for call in fake_telegram.calls[calls_before:] if call.params.get("chat_id") == GROUP]
    assert group_methods.count("sendDocument") == 1  # the transcript went out once
    assert LeadDispatch.objects.get(lead=lead).status == LeadDispatch.Status.SENT

    again = admin_client.post(
        reverse("admin:leads_lead_changelist"), {"action": "resend_to_crm", "_selected_action": [lead.pk]}, follow=True
    )
    assert "Already delivered everywhere" in again.content.decode()
