"""Hostile updates at the webhook: each gets a clear answer (400, or 200 and ignored) and changes nothing else."""

import json
import logging

import pytest
from django.db import DataError, OperationalError, connection
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings

from bots import api as webhook_api
from bots import intake
from bots.models import Chat, Message, QuarantinedUpdate, TelegramUpdate
from tests.factories import MembershipFactory
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
    """Stored updates, chats and messages, counted in one query: the corpus test asks 2000 times."""
    counts = ", ".join(f"(SELECT count(*) FROM {model._meta.db_table})" for model in (TelegramUpdate, Chat, Message))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return cursor.fetchone()


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


# --- the corpus: hundreds of hostile bodies, each delivered twice ----------------------------------------------
# Bodies are raw bytes, so that what Python's json would never write (NaN, Infinity, 1e999) can be sent too.

_corpus_update_ids = iter(range(7_000_000, 8_000_000))

WRONG_TYPES: dict[str, object] = {
    "null": None, "true": True, "zero": 0, "negative": -1, "int64 max": 2**63 - 1, "float": 1.5, "empty": "",
    "text": "x", "5k text": "y" * 5000, "empty list": [], "list": [1, "a"], "empty object": {}, "object": {"a": 1},
}  # fmt: skip


def _rich_message_update(update_id: int) -> dict:
    """A message with every part the gateway reads: sender, chat, text, caption, files, contact, entities."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 77, "date": 1_700_000_000, "text": "hello", "caption": "a caption",
            "chat": {"id": 601, "type": "private", "first_name": "Anna"},
            "from": {"id": 601, "is_bot": False, "first_name": "Anna", "last_name": "K", "username": "anna",
                     "language_code": "en"},
            "entities": [{"type": "bold", "offset": 0, "length": 5}],
            "photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90, "file_size": 900}],
            "document": {"file_id": "d1", "file_unique_id": "du1", "file_name": "a.pdf", "mime_type": "application/pdf",
                         "file_size": 10},
            "contact": {"phone_number": "+100", "first_name": "Anna", "last_name": "K", "user_id": 601},
        },
    }  # fmt: skip


def _rich_callback_update(update_id: int) -> dict:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": "cb1", "data": "menu:open", "chat_instance": "ci",
            "from": {"id": 602, "is_bot": False, "first_name": "Bob", "username": "bob", "language_code": "ru"},
            "message": {"message_id": 5, "date": 1_700_000_000, "text": "pick",
                        "chat": {"id": 602, "type": "private", "first_name": "Bob"}},
        },
    }  # fmt: skip


def _leaf_paths(value: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [path for key, item in value.items() for path in [(*prefix, key), *_leaf_paths(item, (*prefix, key))]]
    if isinstance(value, list):
        return [path for index, item in enumerate(value) for path in _leaf_paths(item, (*prefix, index))]
    return []


def _with(update: dict, path: tuple, value: object) -> dict:
    target = update
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return update


def _body(update: object) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode()


def _wrong_types() -> dict[str, bytes]:
    """Every field of a rich message and of a button press, replaced by every wrong type in turn."""
    bodies = {}
    for name, build in (("message", _rich_message_update), ("callback", _rich_callback_update)):
        for path in _leaf_paths(build(0)):
            if path == ("update_id",):
                continue
            for type_name, value in WRONG_TYPES.items():
                key = f"{name}.{'.'.join(map(str, path[1:]))} = {type_name}"
                bodies[key] = _body(_with(build(next(_corpus_update_ids)), path, value))
    for type_name, value in WRONG_TYPES.items():
        bodies[f"update_id = {type_name}"] = _body({"update_id": value, "message": {"text": "x"}})
    return bodies


OVER_LONG_STRINGS = [
    (("message", "from", "language_code"), 17),
    (("message", "from", "username"), 65),
    (("message", "from", "username"), 200),
    (("message", "from", "first_name"), 129),
    (("message", "from", "last_name"), 5000),
    (("message", "chat", "type"), 17),
    (("message", "text"), 300_000),
    (("message", "caption"), 100_000),
    (("message", "document", "file_name"), 20_000),
    (("message", "document", "mime_type"), 2_000),
    (("message", "document", "file_id"), 10_000),
    (("message", "contact", "phone_number"), 10_000),
    (("message", "contact", "first_name"), 5_000),
]


def _over_long() -> dict[str, bytes]:
    bodies = {}
    for path, length in OVER_LONG_STRINGS:
        for alphabet in ("z", "я"):
            bodies[f"{'.'.join(path)} of {length} x {alphabet}"] = _body(
                _with(_rich_message_update(next(_corpus_update_ids)), path, alphabet * length)
            )
    for path in (("callback_query", "data"), ("callback_query", "id"), ("callback_query", "from", "language_code"),
                 ("callback_query", "from", "username"), ("callback_query", "message", "chat", "type")):  # fmt: skip
        bodies[f"{'.'.join(path)} of 70 000"] = _body(
            _with(_rich_callback_update(next(_corpus_update_ids)), path, "q" * 70_000)
        )
    command = "/" + "c" * 64
    bodies["a 64-character command"] = _body(text_update(601, command, update_id=next(_corpus_update_ids)))
    bodies["/start with 10k of arguments"] = _body(
        text_update(601, "/start " + "a" * 10_000, update_id=next(_corpus_update_ids))
    )
    return bodies


def _non_finite_numbers() -> dict[str, bytes]:
    bodies = {}
    for token in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999"):
        for where in ("message.date", "message.from.id", "message.x_unread", "photo width", "top level"):
            update_id = next(_corpus_update_ids)
            marker = "__NUMBER__"
            update = _rich_message_update(update_id)
            if where == "message.date":
                update["message"]["date"] = marker
            elif where == "message.from.id":
                update["message"]["from"]["id"] = marker
            elif where == "message.x_unread":
                update["message"]["x_unread"] = marker
            elif where == "photo width":
                update["message"]["photo"][0]["width"] = marker
            else:
                update["score"] = marker
            bodies[f"{token} in {where}"] = _body(update).replace(f'"{marker}"'.encode(), token.encode())
    bodies["NaN as update_id"] = b'{"update_id": NaN, "message": {}}'
    bodies["Infinity alone"] = b"Infinity"
    return bodies


def _deep_nesting() -> dict[str, bytes]:
    bodies = {}
    for depth in (33, 100, 999, 5_000, 100_000):
        update_id = next(_corpus_update_ids)
        bodies[f"list nested {depth} deep"] = (
            f'{{"update_id": {update_id}, "message": {{"message_id": 1, "date": 0, "text": "x", '
            f'"chat": {{"id": 601, "type": "private"}}, "x": ' + "[" * depth + "]" * depth + "}}"
        ).encode()
        bodies[f"object nested {depth} deep"] = (
            f'{{"update_id": {update_id}, "x": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
        ).encode()
    return bodies


def _huge_bodies() -> dict[str, bytes]:
    five_mb = 5 * 1024 * 1024
    return {
        "a 5 MB text": _body(text_update(601, "w" * five_mb, update_id=next(_corpus_update_ids))),
        "a 5 MB unread field": _body({"update_id": next(_corpus_update_ids), "pad": "p" * five_mb}),
        "a 5 MB username": _body(
            _with(_rich_message_update(next(_corpus_update_ids)), ("message", "from", "username"), "u" * five_mb)
        ),
    }


TELEGRAM_UPDATE_TYPES = [
    "edited_message", "channel_post", "edited_channel_post", "business_connection", "business_message",
    "edited_business_message", "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
    "hologram", "x" * 300,
]  # fmt: skip


def _unknown_types() -> dict[str, bytes]:
    bodies = {}
    for kind in TELEGRAM_UPDATE_TYPES:
        for shape_name, shape in (("an object", {"id": 1, "text": "?"}), ("a string", "s"), ("null", None),
                                  ("a message", _rich_message_update(0)["message"])):  # fmt: skip
            bodies[f"{kind[:30]} as {shape_name}"] = _body({"update_id": next(_corpus_update_ids), kind: shape})
    return bodies


def _not_updates() -> dict[str, bytes]:
    return {
        "empty": b"", "whitespace": b"  \n", "a list": b"[]", "a string": b'"update"', "a number": b"42",
        "truncated": b'{"update_id": 1, "message": {', "two objects": b'{"update_id": 1}{"update_id": 2}',
        "trailing comma": b'{"update_id": 1,}', "single quotes": b"{'update_id': 1}", "BOM": b"\xef\xbb\xbf{}",
        "latin-1 bytes": '{"update_id": 9, "message": {"text": "é"}}'.encode("latin-1"),
        "UTF-16": '{"update_id": 9}'.encode("utf-16"), "NUL byte": b'{"update_id": 9, "x": "\x00"}',
        "escaped NUL": b'{"update_id": 9, "x": "\\u0000"}', "lone surrogate": b'{"update_id": 9, "x": "\\udc00"}',
        "a 5000-digit number": b'{"update_id": ' + b"9" * 5000 + b"}",
        "update_id as a float": b'{"update_id": 5.0, "message": {}}',
    }  # fmt: skip


def hostile_corpus() -> dict[str, bytes]:
    corpus = {}
    for part in (_wrong_types, _over_long, _non_finite_numbers, _deep_nesting, _huge_bodies, _unknown_types,
                 _not_updates):  # fmt: skip
        corpus.update(part())
    return corpus


def test_the_corpus_is_big_and_covers_every_kind():
    corpus = hostile_corpus()
    assert len(corpus) >= 300
    for needle in ("NaN", "Infinity", "language_code of 17", "username of 65", "nested 100000", "5 MB",
                   "hologram", "= null", "= object"):  # fmt: skip
        assert any(needle in name for name in corpus), needle


def test_every_hostile_body_gets_a_deliberate_answer_and_the_same_answer_again(client, project_a, project_b):
    post(client, project_b, text_update(900, "the other tenant's message"))
    other_tenant = (TelegramUpdate.objects.filter(project=project_b).count(),
                    Message.objects.filter(project=project_b).count())  # fmt: skip
    answers: dict[str, tuple[int, str]] = {}
    failures = []
    for name, body in hostile_corpus().items():
        before = stored()
        first = post(client, project_a, body)
        after_first = stored()
        second = post(client, project_a, body)
        first_answer = (first.status_code, first.json()["description"])
        second_answer = (second.status_code, second.json()["description"])
        answers[name] = first_answer
        if first.status_code not in (200, 400):
            failures.append(f"{name}: {first_answer}")
        elif first.status_code == 400 and (second_answer != first_answer or after_first != before):
            failures.append(f"{name}: 400 then {second_answer}, stored {before} -> {after_first}")
        elif first.status_code == 200 and second_answer != (200, "duplicate"):
            failures.append(f"{name}: {first_answer} then {second_answer}")
        elif second.status_code == 200 and stored() != after_first:
            failures.append(f"{name}: the redelivery stored something")
    assert not failures, "\n".join(failures)
    # Every body was handled by the code on purpose: none needed the last guard.
    assert not QuarantinedUpdate.objects.exists(), list(QuarantinedUpdate.objects.values_list("error", flat=True))
    refused = [name for name, (status, _) in answers.items() if status == 400]
    accepted = [name for name, (status, _) in answers.items() if status == 200]
    for name in ("NaN in message.date", "Infinity in message.x_unread", "1e999 in top level", "a 5 MB text",
                 "list nested 100000 deep", "object nested 33 deep", "message.text = object"):  # fmt: skip
        assert name in refused, name
    # Too long for a column, but the user's message is still theirs: the profile field is cut to fit.
    for name in ("message.from.language_code of 17 x z", "message.from.username of 65 x я",
                 "message.chat.type of 17 x z", "hologram as an object"):  # fmt: skip
        assert name in accepted, name
    chat = Chat.objects.filter(project=project_a, telegram_chat_id=601).get()
    assert len(chat.language_code) <= 16
    assert len(chat.username) <= 64
    assert (TelegramUpdate.objects.filter(project=project_b).count(),
            Message.objects.filter(project=project_b).count()) == other_tenant  # fmt: skip


@pytest.mark.parametrize(("field", "length"), [("language_code", 17), ("username", 65), ("first_name", 400)])
def test_a_profile_field_longer_than_its_column_is_cut_and_the_message_kept(client, project_a, field, length):
    update = text_update(501, "I need a quote")
    update["message"]["from"][field] = "q" * length
    response = post(client, project_a, update)
    assert response.status_code == 200
    assert response.json()["description"] == "stored"
    chat = Chat.objects.get(project=project_a, telegram_chat_id=501)
    assert getattr(chat, field) == "q" * Chat._meta.get_field(field).max_length
    assert Message.objects.get(chat=chat).text == "I need a quote"


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_refused_with_400(client, project_a, token):
    body = json.dumps(text_update(501, "hi")).encode().replace(b'"date": ', b'"date": ' + token + b', "d": ')
    response = post(client, project_a, body)
    assert response.status_code == 400
    assert stored() == (0, 0, 0)


def test_an_update_the_code_cannot_store_is_quarantined_answered_200_and_counted(client, project_a, project_b,
                                                                                  monkeypatch, caplog):  # fmt: skip
    def a_column_nobody_fitted(project, incoming):
        raise DataError("value too long for type character varying(16)")

    monkeypatch.setattr(intake, "_chat_upsert", a_column_nobody_fitted)
    body = json.dumps(text_update(501, "please keep me", update_id=4242), ensure_ascii=False).encode()
    with caplog.at_level(logging.ERROR, logger="bots.api"):
        answers = [post(client, project_a, body) for _ in range(3)]
    assert [(a.status_code, a.json()["description"]) for a in answers] == [(200, "quarantined")] * 3
    quarantined = QuarantinedUpdate.objects.get()
    assert (quarantined.project, quarantined.update_id, quarantined.deliveries) == (project_a, 4242, 3)
    assert bytes(quarantined.body) == body  # kept byte for byte
    assert "DataError" in quarantined.error
    assert "character varying(16)" in quarantined.error
    assert stored() == (0, 0, 0)  # nothing half-stored
    assert any(getattr(record, "project_id", None) == project_a.pk for record in caplog.records)
    monkeypatch.undo()
    # The same update id in the other tenant is unaffected.
    assert post(client, project_b, text_update(501, "fine", update_id=4242)).json()["description"] == "stored"


def test_quarantined_updates_are_shown_to_the_projects_operators_only(client, project_a, project_b):
    for project in (project_a, project_b):
        body = f'{{"who": "{project.slug} body"}}'.encode()
        QuarantinedUpdate.objects.create(project=project, update_id=1, body_sha256=project.slug * 8, body=body,
                                         error="DataError: x")  # fmt: skip
    operator = MembershipFactory(project=project_a).user
    client.force_login(operator)
    listing = client.get(reverse("admin:bots_quarantinedupdate_changelist"))
    assert listing.status_code == 200
    page = client.get(reverse("admin:bots_quarantinedupdate_change",
                              args=[QuarantinedUpdate.objects.get(project=project_a).pk])).content.decode()  # fmt: skip
    assert "alpha body" in page
    other = client.get(reverse("admin:bots_quarantinedupdate_change",
                               args=[QuarantinedUpdate.objects.get(project=project_b).pk]))  # fmt: skip
    assert other.status_code == 302


def test_a_database_that_is_down_answers_503_so_that_telegram_delivers_again(client, project_a, monkeypatch):
    def database_down(**kwargs: object) -> None:
        raise OperationalError("connection to server on socket failed: No such file or directory")

    monkeypatch.setattr(webhook_api, "update_accept", database_down)
    response = post(client, project_a, text_update(501, "hello"))
    assert response.status_code == 503
    assert response.json()["ok"] is False
    assert not QuarantinedUpdate.objects.exists()  # not the body's fault: nothing kept, Telegram retries
