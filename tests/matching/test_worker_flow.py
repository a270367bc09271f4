"""The whole matching flow on a real Celery worker: Start matching wakes the loop, the qualifier runs from
the generation queue, both users are introduced, and two acceptances exchange the contacts once."""

import json

import pytest
from django.test import Client

from bots.models import Chat
from matching.models import Match, Profile
from matching.profiles import profile_save
from tests.fakes import llm_api
from tests.matching.dialogue import callback_update, texts_to

pytestmark = pytest.mark.django_db(transaction=True)

USERS = {
    301: ("seeker", "Senior Python backend developer, Django and PostgreSQL, looking for a remote full-time job."),
    302: ("provider", "Продуктовая компания ищет senior Python-разработчика (Django, PostgreSQL), удалённо."),
}


def post(client: Client, project, update: dict) -> None:
    response = client.post(
        f"/telegram/webhook/{project.slug}/", data=json.dumps(update), content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200, response.content


def test_start_matching_to_contacts_through_the_worker(client, alpha, beta, fake_telegram, fake_llm, celery_worker):
    for chat_id, (role, summary) in USERS.items():
        chat = Chat.objects.create(project=alpha, telegram_chat_id=chat_id, user_id=chat_id, username=f"user{chat_id}")
        saved = profile_save(
            project=alpha, chat=chat, complete=True,
            changes={"role": role, "summary": summary, "matching_summary": summary},
        )  # fmt: skip
        assert saved.profile.state == Profile.State.READY
    fake_llm.openai.responder = lambda request: llm_api.tool_call(
        "QualificationVerdict", {"qualified": True, "reason": "Same stack."}
    )

    for chat_id in USERS:
        post(client, alpha, callback_update(chat_id, "match:activate"))
    # Two confirmations, then the two introductions: the loop woke at once and the qualifier ran.
    fake_telegram.wait_for("sendMessage", count=4, token=alpha.bot_token, timeout=60)
    match = Match.objects.get(project=alpha, status=Match.Status.QUALIFIED)
    for chat_id in USERS:
        assert any("Would you like to connect?" in text for text in texts_to(fake_telegram, alpha, chat_id))

    for chat_id in USERS:
        post(client, alpha, callback_update(chat_id, f"match:accept:{match.pk}"))
    fake_telegram.wait_for("sendMessage", count=7, token=alpha.bot_token, timeout=60)
    fake_telegram.wait_for("answerCallbackQuery", count=4, token=alpha.bot_token, timeout=30)

    assert Match.objects.get(pk=match.pk).status == Match.Status.CONNECTED
    assert [t for t in texts_to(fake_telegram, alpha, 301) if "https://t.me/user302" in t]
    assert [t for t in texts_to(fake_telegram, alpha, 302) if "https://t.me/user301" in t]
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)
