"""Matching end to end on a real worker with an endpoint embedding model of each common size: Start matching
embeds through the (fake) OpenAI-compatible endpoint at that size, the loop pairs the two users, the qualifier
runs, both are introduced, and two acceptances exchange the contacts; a failing embedder still answers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bots.models import Chat
from matching.models import Match, Profile
from matching.profiles import profile_embeddings_retry_due, profile_save
from tests.fakes import llm_api
from tests.matching.conftest import ENDPOINT_EMBEDDING_MODEL
from tests.matching.dialogue import callback_update, texts_to, toasts, toward
from tests.telegram_updates import webhook_post

pytestmark = pytest.mark.django_db(transaction=True)

USERS = {
    301: ("seeker", "Senior Python backend developer, Django and PostgreSQL, looking for a remote full-time job."),
    302: ("provider", "Product company hiring a senior Python developer (Django, PostgreSQL), remote."),
}
SIMILARITY = 0.9


def ready_users(project, fake_llm, dim: int) -> None:
    """Two complete profiles; the endpoint embeds their summaries `SIMILARITY` apart at `dim` dimensions."""
    for index, (chat_id, (role, summary)) in enumerate(USERS.items()):
        chat = Chat.objects.create(
            project=project, telegram_chat_id=chat_id, user_id=chat_id, username=f"user{chat_id}"
        )
        changes = {"role": role, "summary": summary, "matching_summary": summary}
        assert profile_save(project=project, chat=chat, complete=True, changes=changes).profile.state == "ready"
        fake_llm.embeddings.set(summary, toward(0, 1.0 if index == 0 else SIMILARITY, index + 1, dim))
    fake_llm.openai.responder = lambda request: llm_api.tool_call(
        "QualificationVerdict", {"qualified": True, "reason": "Same stack."}
    )


def introduced_and_connected(client, project, fake_telegram, *, sent_before: int) -> Match:
    """From two active profiles: both introduced, both accept, each gets the other's contact."""
    fake_telegram.wait_for("sendMessage", count=sent_before + 2, token=project.bot_token, timeout=60)
    match = Match.objects.get(project=project, status=Match.Status.QUALIFIED)
    for chat_id in USERS:
        assert any("Would you like to connect?" in text for text in texts_to(fake_telegram, project, chat_id))
        webhook_post(client, project, callback_update(chat_id, f"match:accept:{match.pk}"))
    fake_telegram.wait_for("sendMessage", count=sent_before + 5, token=project.bot_token, timeout=60)
    match.refresh_from_db()
    assert match.status == Match.Status.CONNECTED
    assert [t for t in texts_to(fake_telegram, project, 301) if "https://t.me/user302" in t]
    assert [t for t in texts_to(fake_telegram, project, 302) if "https://t.me/user301" in t]
    return match


@pytest.mark.parametrize("endpoint_dim", [256, 384, 512, 1536])
def test_matching_end_to_end_with_an_embedding_model_of_this_size(
    client, alpha, beta, fake_telegram, fake_llm, endpoint_worker, endpoint_dim
):
    ready_users(alpha, fake_llm, endpoint_dim)

    for chat_id in USERS:
        webhook_post(client, alpha, callback_update(chat_id, "match:activate"))
    fake_telegram.wait_for("sendMessage", count=2, token=alpha.bot_token, timeout=60)  # the two confirmations
    match = introduced_and_connected(client, alpha, fake_telegram, sent_before=2)

    assert match.similarity == pytest.approx(SIMILARITY, abs=1e-3)
    for profile in Profile.objects.filter(project=alpha):
        assert (profile.embedding_model, profile.embedding_dim) == (ENDPOINT_EMBEDDING_MODEL, endpoint_dim)
        assert len(profile.embedding) == endpoint_dim
    # The endpoint was asked for vectors of this size (Matryoshka `dimensions`), and gave them.
    assert {r.body.get("dimensions") for r in fake_llm.requests_to("embeddings")} == {endpoint_dim}
    fake_telegram.wait_for("answerCallbackQuery", count=4, token=alpha.bot_token, timeout=30)
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


@pytest.mark.parametrize("endpoint_dim", [256])
def test_a_failing_embedder_on_the_worker_answers_the_press_and_matching_starts_after_the_retry(
    client, alpha, beta, fake_telegram, fake_llm, endpoint_worker, endpoint_dim
):
    ready_users(alpha, fake_llm, endpoint_dim)
    # The provider is down: the press makes one quick attempt on the worker (no back-off while the user waits).
    fake_llm.embeddings.failing = llm_api.error(503, message="embedding backend overloaded")

    for chat_id in USERS:
        webhook_post(client, alpha, callback_update(chat_id, "match:activate"))
    fake_telegram.wait_for("answerCallbackQuery", count=2, token=alpha.bot_token, timeout=60)
    assert toasts(fake_telegram, alpha) == ["Matching will start shortly"] * 2
    fake_telegram.wait_for("sendMessage", count=2, token=alpha.bot_token, timeout=30)
    for chat_id in USERS:
        assert texts_to(fake_telegram, alpha, chat_id)[0].startswith("Matching will start shortly")
    for profile in Profile.objects.filter(project=alpha):
        assert profile.state == Profile.State.READY
        assert "embedding backend overloaded" in profile.embedding_error

    fake_llm.embeddings.failing = None  # the provider is back; beat's sweep runs the planned retries
    assert profile_embeddings_retry_due(now=timezone.now() + timedelta(minutes=2)) == 2
    for chat_id in USERS:
        assert texts_to(fake_telegram, alpha, chat_id)[-1].startswith("Matching has started.")
    introduced_and_connected(client, alpha, fake_telegram, sent_before=4)
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)
