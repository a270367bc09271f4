"""Hostile updates at the webhook: each gets a clear answer (400, or 200 and ignored) and changes nothing else."""

import json
import logging

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings

from bots.models import Chat, Message, TelegramUpdate
from tests.reliability.test_properties import updates
from tests.telegram_updates import message_update, text_update

pytestmark = pytest.mark.django_db


def post(client: Client, project, body: object) -> object:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/telegram/webhook/{project.slug}/", data=data, content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project.webhook_secret,
    )  # fmt: skip


def stored() -> tuple[int, int, int]:
    return TelegramUpdate.objects.count(), Chat.objects.count(), Message.objects.count()


def nul_text() -> dict:
    return text_update(501, "hello\u0000world")


def nul_name() -> dict:
    update = text_update(501, "hi")
    update["message"]["from"]["first_name"] = "A\u0000B"
    return update


def huge_update_id() -> dict:
    return text_update(501, "hi", update_id=2**70)


def huge_chat_id() -> dict:
    return text_update(2**70, "hi")


def huge_message_id() -> dict:
    update = text_update(501, "hi")
    update["message"]["message_id"] = 2**63
    return update


def nul_in_unread_field() -> dict:
    # PostgreSQL's jsonb cannot hold \u0000 anywhere, even in a field the gateway never reads.
    update = text_update(501, "hi")
    update["message"]["x_extra"] = "\u0000"
    return update


def lone_surrogate() -> str:
    update = text_update(501, "PLACEHOLDER")
    return json.dumps(update).replace("PLACEHOLDER", "\\ud800 broken")


HOSTILE_400 = {
    "NUL in the text": nul_text,
    "NUL in the sender name": nul_name,
    "NUL in a field nobody reads": nul_in_unread_field,
    "update_id beyond 64 bits": huge_update_id,
    "chat id beyond 64 bits": huge_chat_id,
    "message_id beyond 64 bits": huge_message_id,
    "a lone UTF-16 surrogate": lone_surrogate,
    "invalid UTF-8": lambda: b'{"update_id": 5, "message": {"text": "\xc3\x28"}}',
    "deeply nested JSON": lambda: '{"update_id": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "not an object": lambda: "12345",
    "JSON null": lambda: "null",
    "empty body": lambda: "",
    "text is a number": lambda: message_update(501, text=5),
    "chat is a string": lambda: {"update_id": 9, "message": {"message_id": 1, "date": 0, "chat": "x", "text": "a"}},
    "bool update_id": lambda: {"update_id": True, "message": {}},
}


@pytest.mark.parametrize("build", HOSTILE_400.values(), ids=HOSTILE_400.keys())
def test_hostile_update_is_400_and_stores_nothing(client, project_a, project_b, build, caplog):
    post(client, project_b, text_update(900, "a message of the other tenant"))
    before = stored()
    with caplog.at_level(logging.WARNING, logger="bots.api"):
        response = post(client, project_a, build())
    assert response.status_code == 400, response.content
    assert response.json()["ok"] is False
    assert "malformed update" in response.json()["description"]
    assert stored() == before
    # Logged with the project's id, so an operator can tell which bot is receiving junk.
    assert any(getattr(record, "project_id", None) == project_a.pk for record in caplog.records)


UNKNOWN_TYPES = {
    "edited message": {"update_id": 41, "edited_message": text_update(501, "edited")["message"]},
    "channel post": {"update_id": 42, "channel_post": {"message_id": 1, "date": 0, "text": "x",
                                                       "chat": {"id": -1001, "type": "channel"}}},
    "poll": {"update_id": 43, "poll": {"id": "p", "question": "?", "options": [], "total_voter_count": 0,
                                       "is_closed": False, "is_anonymous": True, "type": "regular",
                                       "allows_multiple_answers": False}},
    "a type from the future": {"update_id": 44, "hologram": {"id": 1, "mood": "curious"}},
    "no payload at all": {"update_id": 45},
    "a message without content": {"update_id": 46, "message": {"message_id": 1, "date": 0,
                                                               "chat": {"id": 501, "type": "private"}}},
}  # fmt: skip


@pytest.mark.parametrize("update", UNKNOWN_TYPES.values(), ids=UNKNOWN_TYPES.keys())
def test_update_types_we_do_not_handle_are_acknowledged_and_ignored(client, project_a, update):
    response = post(client, project_a, update)
    assert response.status_code == 200
    assert response.json()["description"] == "ignored"
    assert not Message.objects.exists()
    # Stored once for the record: a second delivery is recognised as a duplicate.
    assert TelegramUpdate.objects.filter(project=project_a, update_id=update["update_id"]).count() == 1
    assert post(client, project_a, update).json()["description"] == "duplicate"


def test_a_huge_text_within_the_body_limit_is_kept_whole(client, project_a):
    text = "Я хочу заказать уборку. " * 18_000  # 432k characters, about 800 kB of UTF-8: under the 1 MiB limit
    response = post(client, project_a, json.dumps(text_update(501, text), ensure_ascii=False).encode())
    assert response.status_code == 200
    assert Message.objects.get().text == text


def test_a_body_over_the_limit_is_refused_before_parsing(client, project_a):
    response = post(client, project_a, b'{"update_id": 1, "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}')
    assert response.status_code == 400
    assert stored() == (0, 0, 0)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(payload=updates)
def test_any_json_gets_200_or_400_never_a_server_error(client, project_a, payload):
    before = stored()
    response = post(client, project_a, payload)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert stored() == before
    else:
        assert response.json()["description"] in ("stored", "ignored", "duplicate")
