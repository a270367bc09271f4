"""Operators in the admin: scoped lists, re-embed, re-run qualification, and broadcasts."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from bots.llm.embeddings import OFFLINE_MODEL_ID
from bots.models import Generation
from matching import broadcasts
from matching.broadcasts import broadcast_send
from matching.models import Broadcast, BroadcastDelivery, Match, Profile
from tests.factories import MembershipFactory
from tests.matching.dialogue import active_profile, texts_to, toward

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:matching_profile_changelist"


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(broadcasts, "sleep", recorded.append)
    return recorded


def run_action(client, url_name: str, action: str, objects, **extra):
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], **extra}
    return client.post(reverse(url_name), data)


def test_an_operator_sees_only_the_profiles_and_matches_of_their_projects(client, alpha, beta):
    active_profile(alpha, 1, "seeker", toward(0, 1.0, 1), summary="Alpha seeker")
    active_profile(beta, 2, "seeker", toward(0, 1.0, 1), summary="Beta seeker")
    operator = MembershipFactory(project=alpha).user
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="matching"))
    client.force_login(operator)

    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "user1" in page
    assert "user2" not in page
    beta_profile = Profile.objects.get(project=beta)
    assert client.get(reverse("admin:matching_profile_change", args=[beta_profile.pk])).status_code == 302


def test_reembed_recomputes_vectors_of_the_current_model(admin_client, alpha):
    stale = active_profile(alpha, 1, "seeker", toward(0, 1.0, 1), model="old/model", summary="Go developer.")

    response = run_action(admin_client, CHANGELIST, "reembed", [stale])

    assert response.status_code == 302
    stale.refresh_from_db()
    assert (stale.embedding_model, stale.embedded_text) == (OFFLINE_MODEL_ID, "Go developer.")
    assert list(stale.embedding) != toward(0, 1.0, 1)


def test_rerun_qualification_reopens_a_disqualified_match(admin_client, alpha):
    seeker = active_profile(alpha, 1, "seeker", toward(0, 1.0, 1))
    provider = active_profile(alpha, 2, "provider", toward(0, 0.9, 2))
    match = Match.objects.create(project=alpha, user_a=seeker, user_b=provider, round=1, status="disqualified")

    response = run_action(admin_client, "admin:matching_match_changelist", "requalify", [match])

    assert response.status_code == 302
    assert Match.objects.get(pk=match.pk).status == Match.Status.PENDING
    assert Generation.objects.filter(kind="qualification", target_id=match.pk, status="pending").exists()


def test_a_broadcast_previews_then_sends_at_telegrams_pace_and_records_each_delivery(
    admin_client, alpha, beta, fake_telegram, waits, django_capture_on_commit_callbacks
):
    reader = active_profile(alpha, 1, "seeker", toward(0, 1.0, 1))
    gone = active_profile(alpha, 2, "provider", toward(0, 1.0, 1))
    already_blocked = active_profile(alpha, 3, "provider", toward(0, 1.0, 1))
    other_tenant = active_profile(beta, 4, "seeker", toward(0, 1.0, 1))
    already_blocked.chat.blocked_at = timezone.now()
    already_blocked.chat.save()
    fake_telegram.block_chat(alpha.bot_token, 2)
    chosen = [reader, gone, already_blocked, other_tenant]

    preview = run_action(admin_client, CHANGELIST, "broadcast", chosen)
    assert preview.status_code == 200
    page = preview.content.decode()
    assert "4 selected users will receive the message" in page
    assert "1 blocked the bot" in page
    assert not Broadcast.objects.exists()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = run_action(admin_client, CHANGELIST, "broadcast", chosen, send="1", text="We have new jobs!")
    assert response.status_code == 302
    assert len(queued) == 2  # one send task per project
    for broadcast in Broadcast.objects.order_by("pk"):
        assert broadcast_send(broadcast=broadcast)

    statuses = {d.chat.telegram_chat_id: d.status for d in BroadcastDelivery.objects.select_related("chat")}
    assert statuses == {1: "sent", 2: "blocked", 3: "blocked", 4: "sent"}
    assert texts_to(fake_telegram, alpha, 1) == ["We have new jobs!"]
    assert texts_to(fake_telegram, beta, 4) == ["We have new jobs!"]
    assert not texts_to(fake_telegram, alpha, 3)  # a chat known to be blocked is not even tried
    assert waits == [0.05, 0.05, 0.05]  # after each request that went to Telegram
    assert all(b.finished_at for b in Broadcast.objects.all())

    assert broadcast_send(broadcast=Broadcast.objects.first())  # a re-run sends nothing twice
    assert texts_to(fake_telegram, alpha, 1) == ["We have new jobs!"]


def test_an_empty_broadcast_is_refused(admin_client, alpha):
    reader = active_profile(alpha, 1, "seeker", toward(0, 1.0, 1))

    response = run_action(admin_client, CHANGELIST, "broadcast", [reader], send="1", text="   ")

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Broadcast.objects.exists()
