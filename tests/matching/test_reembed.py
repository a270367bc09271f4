"""Changing the embedding model: old vectors are not matched, `matching_reembed` re-embeds in batches with
progress, one project at a time, and matching works again with the new model; a failing embedder exits 4."""

import io
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from bots.llm.embeddings import OFFLINE_DIM, OFFLINE_MODEL_ID
from matching.matcher import matching_run, matching_wake
from matching.models import Match, Profile
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.matching.dialogue import active_profile, toward

MODEL = "openai/emb-test"


def offline_profiles(project, first_chat_id: int) -> list[Profile]:
    """A seeker and two providers embedded by the offline model (OFFLINE_DIM dimensions), all nearly alike."""
    return [
        active_profile(project, first_chat_id, "seeker", toward(0, 1.0, 1), summary=f"seeker {first_chat_id}"),
        active_profile(project, first_chat_id + 1, "provider", toward(0, 0.95, 2), summary=f"p {first_chat_id + 1}"),
        active_profile(project, first_chat_id + 2, "provider", toward(0, 0.9, 3), summary=f"p {first_chat_id + 2}"),
    ]


def new_model(settings, fake_llm, profiles: list[Profile], dim: int) -> None:
    """Switch to an endpoint model of another size whose vectors of these summaries are again alike."""
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = MODEL, dim
    for index, profile in enumerate(profiles):
        fake_llm.embeddings.set(profile.matching_summary, toward(0, 1.0 - index * 0.05, index + 1, dim))


@pytest.mark.django_db
def test_after_a_model_change_the_command_reembeds_with_progress_and_matching_resumes(
    alpha, beta, fake_llm, offline_embeddings
):
    profiles = offline_profiles(alpha, 1)
    untouched = offline_profiles(beta, 11)
    new_model(offline_embeddings, fake_llm, profiles, 256)

    matching_run(project=alpha)  # old vectors are never compared with the new model's
    assert not Match.objects.filter(project=alpha).exists()

    out = io.StringIO()
    call_command("matching_reembed", alpha.slug, "--batch", "2", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == f"embedding model {MODEL} (256 dimensions)"
    assert lines[1:] == [f"{alpha.slug}: 2/3 profiles re-embedded", f"{alpha.slug}: 3/3 profiles re-embedded", "done"]
    assert [len(r.body["input"]) for r in fake_llm.requests_to("embeddings")] == [2, 1]
    assert {r.body["dimensions"] for r in fake_llm.requests_to("embeddings")} == {256}
    for profile in Profile.objects.filter(project=alpha):
        assert (profile.embedding_model, profile.embedding_dim, len(profile.embedding)) == (MODEL, 256, 256)
    for profile in Profile.objects.filter(pk__in=[p.pk for p in untouched]):
        assert (profile.embedding_dim, profile.embedding_model) == (OFFLINE_DIM, OFFLINE_MODEL_ID)

    matching_wake(project=alpha)
    matching_run(project=alpha)
    pair = Match.objects.filter(project=alpha, user_b__isnull=False).order_by("pk").first()
    assert (pair.user_a, pair.user_b) == (profiles[0], profiles[1])  # the nearest of the new vectors
    assert pair.similarity == pytest.approx(0.95, abs=1e-3)

    again = io.StringIO()
    call_command("matching_reembed", alpha.slug, stdout=again)
    assert f"{alpha.slug}: every profile is embedded with this model" in again.getvalue()


@pytest.mark.django_db
def test_a_failing_embedder_stops_the_command_with_its_reason(alpha, fake_llm, offline_embeddings):
    profiles = offline_profiles(alpha, 1)
    new_model(offline_embeddings, fake_llm, profiles, 384)
    fake_llm.embeddings.failing = llm_api.error(401, message="invalid embedding key")
    err = io.StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("matching_reembed", stdout=io.StringIO(), stderr=err)

    assert exit_info.value.code == 4
    assert "invalid embedding key" in err.getvalue()
    assert set(Profile.objects.values_list("embedding_dim", flat=True)) == {OFFLINE_DIM}  # nothing half-written


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint_dim", [1536])
def test_the_admin_action_reembeds_the_projects_on_the_worker(
    client, alpha, beta, fake_llm, offline_embeddings, endpoint_worker
):
    offline_embeddings.EMBEDDING_MODEL = ""  # the profiles are made with the old, offline model
    profiles = offline_profiles(alpha, 1)
    offline_profiles(beta, 11)
    new_model(offline_embeddings, fake_llm, profiles, 1536)  # the worker already runs with the new one
    operator = MembershipFactory(project=alpha).user
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="matching"))
    client.force_login(operator)

    response = client.post(
        reverse("admin:matching_profile_changelist"),
        {"action": "reembed_projects", "_selected_action": [str(profiles[0].pk)]},
        follow=True,
    )
    assert "3 profile(s) to re-embed with openai/emb-test (1536 dimensions)" in response.content.decode()

    fake_llm.wait_for("embeddings", timeout=30)
    for _ in range(100):
        if set(Profile.objects.filter(project=alpha).values_list("embedding_dim", flat=True)) == {1536}:
            break
        time.sleep(0.1)
    assert set(Profile.objects.filter(project=alpha).values_list("embedding_dim", flat=True)) == {1536}
    assert set(Profile.objects.filter(project=beta).values_list("embedding_dim", flat=True)) == {OFFLINE_DIM}
