"""A failing embedder never swallows a Start matching press: the button is answered, the user is told once
that matching starts shortly, operators see why on the profile, and bounded retries finish the job."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from bots.models import Chat
from matching.models import MatchingState, Profile
from matching.profiles import profile_embeddings_retry_due, profile_save
from matching.vectors import RETRY_DELAYS
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.matching.dialogue import press, texts_to, toasts

pytestmark = pytest.mark.django_db

SUMMARY = "Senior Python backend developer, Django and PostgreSQL, looking for a remote full-time job."
DEFERRED = "Matching will start shortly: your profile is still being prepared."
FAILURES = {
    "provider down": llm_api.error(503, message="embedding backend overloaded"),
    "not an OpenAI-compatible embedding model": "anthropic/claude-embed",
    "vectors of the wrong size": llm_api.vectors([[0.5, 0.5, 0.5, 0.5]]),
}


@pytest.fixture
def endpoint_embeddings(offline_embeddings):
    offline_embeddings.EMBEDDING_MODEL = "openai/emb-test"
    offline_embeddings.EMBEDDING_DIM = 512
    return offline_embeddings


def ready_profile(project, chat_id: int) -> Profile:
    chat = Chat.objects.create(project=project, telegram_chat_id=chat_id, user_id=chat_id, username=f"u{chat_id}")
    changes = {"role": "seeker", "summary": SUMMARY, "matching_summary": SUMMARY}
    return profile_save(project=project, chat=chat, changes=changes, complete=True).profile


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_embedding_answers_the_press_and_joins_once_a_retry_succeeds(
    alpha, beta, fake_llm, fake_telegram, endpoint_embeddings, failure
):
    profile = ready_profile(alpha, 301)
    if isinstance(failure, str):  # a configuration error: EMBEDDING_MODEL names a model that cannot embed
        endpoint_embeddings.EMBEDDING_MODEL = failure
    else:
        fake_llm.embeddings.failing = failure

    press(alpha, 301, "match:activate")
    press(alpha, 301, "match:activate")  # pressed again while waiting

    assert toasts(fake_telegram, alpha) == ["Matching will start shortly"] * 2
    # One quick attempt per press, no retries while the user waits (the planned retries do the rest).
    assert len(fake_llm.requests_to("embeddings")) == (0 if isinstance(failure, str) else 2)
    # Told once, not once per press.
    assert [t for t in texts_to(fake_telegram, alpha, 301) if DEFERRED in t] == [texts_to(fake_telegram, alpha, 301)[0]]
    assert len(texts_to(fake_telegram, alpha, 301)) == 1
    profile.refresh_from_db()
    assert profile.state == Profile.State.READY
    assert profile.embedding is None
    assert profile.embedding_error.startswith(f"{endpoint_embeddings.EMBEDDING_MODEL}: ")
    assert profile.embedding_attempts == 1  # the second press refreshed the reason, not the retry budget
    assert profile.activation_requested_at is not None
    assert profile.embedding_retry_at > timezone.now() + RETRY_DELAYS[0] - timedelta(seconds=30)

    later = timezone.now() + timedelta(minutes=3)
    assert profile_embeddings_retry_due(now=later) == 1
    profile.refresh_from_db()
    assert (profile.state, profile.embedding_attempts) == (Profile.State.READY, 2)
    assert profile.embedding_retry_at == later + RETRY_DELAYS[1]

    fake_llm.embeddings.failing = None  # the provider is back, or the operator fixed the setting
    endpoint_embeddings.EMBEDDING_MODEL = "openai/emb-test"
    assert profile_embeddings_retry_due(now=later + timedelta(minutes=10)) == 1
    profile.refresh_from_db()
    assert profile.state == Profile.State.ACTIVE
    assert profile.embedding is not None
    assert profile.embedded_text == SUMMARY
    assert (profile.embedding_error, profile.embedding_attempts, profile.embedding_retry_at) == ("", 0, None)
    assert profile.activation_requested_at is None
    assert texts_to(fake_telegram, alpha, 301)[-1].startswith("Matching has started.")
    assert MatchingState.objects.get(project=alpha).next_run_at <= timezone.now()  # the loop was woken
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


def test_retries_are_bounded_and_operators_see_the_reason(client, alpha, beta, fake_llm, endpoint_embeddings):
    profile = ready_profile(alpha, 301)
    other = ready_profile(beta, 302)
    fake_llm.embeddings.failing = llm_api.error(503, message="embedding backend overloaded")
    press(alpha, 301, "match:activate")

    when = timezone.now()
    for _ in range(len(RETRY_DELAYS) + 3):
        when += timedelta(days=1)
        profile_embeddings_retry_due(now=when)
    profile.refresh_from_db()
    assert profile.embedding_attempts == len(RETRY_DELAYS) + 1
    assert profile.embedding_retry_at is None  # gave up: no more calls until an operator acts
    calls = len(fake_llm.requests_to("embeddings"))
    assert profile_embeddings_retry_due(now=when + timedelta(days=30)) == 0
    assert len(fake_llm.requests_to("embeddings")) == calls

    operator = MembershipFactory(project=alpha).user
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="matching"))
    client.force_login(operator)
    page = client.get(reverse("admin:matching_profile_changelist") + "?embedding_failed=yes").content.decode()
    assert "gave up" in page
    assert "embedding backend overloaded" in page
    assert f"/{other.pk}/change/" not in page
    detail = client.get(reverse("admin:matching_profile_change", args=[profile.pk])).content.decode()
    assert "embedding backend overloaded" in detail

    # The operator fixed the provider and re-embeds: the waiting Start matching completes.
    fake_llm.embeddings.failing = None
    response = client.post(
        reverse("admin:matching_profile_changelist"), {"action": "reembed", "_selected_action": [str(profile.pk)]}
    )
    assert response.status_code == 302
    profile_embeddings_retry_due()
    profile.refresh_from_db()
    assert profile.state == Profile.State.ACTIVE
    assert profile.embedding_error == ""


def test_a_profile_changed_while_waiting_needs_a_new_confirmation(alpha, fake_llm, fake_telegram, endpoint_embeddings):
    profile = ready_profile(alpha, 301)
    fake_llm.embeddings.failing = llm_api.error(503, message="embedding backend overloaded")
    press(alpha, 301, "match:activate")
    changes = {"matching_summary": "Senior Go developer looking for contract work."}
    profile_save(project=alpha, chat=profile.chat, changes=changes, complete=True)

    fake_llm.embeddings.failing = None
    profile_embeddings_retry_due(now=timezone.now() + timedelta(days=1))

    profile.refresh_from_db()
    assert profile.state == Profile.State.READY  # the card asks again; the old press does not count
    assert profile.activation_requested_at is None
    assert profile.embedded_text == "Senior Go developer looking for contract work."  # prepared for the next press
    assert not [t for t in texts_to(fake_telegram, alpha, 301) if t.startswith("Matching has started.")]
