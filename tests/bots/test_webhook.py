"""POST /telegram/webhook/<slug>/ exactly as the public contract says."""

import json

import pytest
from django.test import Client

from bots.models import Chat, Message, TelegramUpdate
from tenants.services import project_soft_delete
from tests.telegram_updates import photo_update, text_update

pytestmark = pytest.mark.django_db


def post(client: Client, slug: str, body: object, secret: str | None) -> object:
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/telegram/webhook/{slug}/", data=data, content_type="application/json", **headers)


def test_valid_update_is_stored_as_an_unanswered_message(client, project_a):
    response = post(client, "alpha", text_update(501, "Hello there"), project_a.webhook_secret)
    assert response.status_code == 200
    chat = Chat.objects.get(project=project_a, telegram_chat_id=501)
    [message] = Message.objects.filter(chat=chat)
    assert message.text == "Hello there"
    assert message.turn is None
    assert message.needs_reply


def test_wrong_or_missing_secret_is_403_and_stores_nothing(client, project_a, project_b):
    assert post(client, "alpha", text_update(501, "hi"), "wrong").status_code == 403
    assert post(client, "alpha", text_update(501, "hi"), None).status_code == 403
    # Another tenant's secret does not open this tenant's webhook.
    assert post(client, "alpha", text_update(501, "hi"), project_b.webhook_secret).status_code == 403
    assert not TelegramUpdate.objects.exists()
    assert not Message.objects.exists()


def test_unknown_or_deleted_project_is_404(client, project_a):
    assert post(client, "nope", text_update(501, "hi"), project_a.webhook_secret).status_code == 404
    project_soft_delete(project=project_a)
    assert post(client, "alpha", text_update(501, "hi"), project_a.webhook_secret).status_code == 404
    assert not TelegramUpdate.objects.exists()


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", json.dumps({"message": {"text": "no update id"}}), json.dumps({"update_id": "x"}),
     b"\xff\xfe\x00garbage"],
)  # fmt: skip
def test_malformed_body_is_400_and_changes_nothing(client, project_a, body):
    assert post(client, "alpha", body, project_a.webhook_secret).status_code == 400
    assert not TelegramUpdate.objects.exists()
    assert not Chat.objects.exists()


def test_oversized_body_is_refused(client, project_a):
    update = text_update(501, "x" * (2 * 1024 * 1024))
    assert post(client, "alpha", update, project_a.webhook_secret).status_code == 400
    assert not Message.objects.exists()


def test_duplicate_update_id_is_200_and_ignored(client, project_a, project_b):
    update = text_update(501, "Hello", update_id=77)
    assert post(client, "alpha", update, project_a.webhook_secret).status_code == 200
    assert post(client, "alpha", update, project_a.webhook_secret).status_code == 200
    assert Message.objects.filter(project=project_a).count() == 1
    # The same update_id at another project is a different update.
    assert post(client, "beta", update, project_b.webhook_secret).status_code == 200
    assert Message.objects.filter(project=project_b).count() == 1


def test_file_without_text_is_kept_without_needing_a_model_reply(client, project_a):
    post(client, "alpha", photo_update(501), project_a.webhook_secret)
    [message] = Message.objects.all()
    assert message.files[0]["kind"] == "photo"
    assert message.files[0]["file_id"] == "big-501"
    assert not message.needs_reply


def test_group_chatter_is_ignored_but_commands_are_kept(client, project_a):
    post(client, "alpha", text_update(-100123, "staff talking in the lead group"), project_a.webhook_secret)
    assert not Message.objects.exists()
    post(client, "alpha", text_update(-100123, "/start connect_alpha"), project_a.webhook_secret)
    [message] = Message.objects.all()
    assert message.command == "/start"
    assert message.command_args == "connect_alpha"
