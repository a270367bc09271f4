"""Raw Telegram updates (as the Bot API posts them) normalised into `IncomingUpdate`."""

import dataclasses
import json

import pytest

from bots.gateway import FileRef, IncomingUpdate, MalformedUpdate, Sender, SharedContact, normalize_update
from tests.telegram_updates import message_update, photo_update, text_update, user


def test_text_message():
    payload = text_update(501, "Hello, do you clean windows?", sender=user(501, first_name="Anna", username="anna"))

    incoming = normalize_update(payload)

    assert incoming.kind == "message"
    assert incoming.update_id == payload["update_id"]
    assert incoming.chat_id == 501
    assert incoming.chat_type == "private"
    assert incoming.message_id == payload["message"]["message_id"]
    assert incoming.text == "Hello, do you clean windows?"
    assert incoming.sender == Sender(
        user_id=501, username="anna", first_name="Anna", last_name="", language_code="en", is_bot=False
    )
    assert incoming.files == ()
    assert incoming.contact is None
    assert incoming.command is None
    assert incoming.command_args == ""
    assert incoming.callback is None
    assert incoming.has_content


def test_result_is_frozen():
    incoming = normalize_update(text_update(501, "hi"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        incoming.text = "changed"  # type: ignore[misc]


def test_photo_with_caption_keeps_only_the_largest_size():
    incoming = normalize_update(photo_update(501, caption="My broken window"))

    assert incoming.text == "My broken window"
    assert incoming.files == (
        FileRef(kind="photo", file_id="big-501", file_unique_id="ub-501", file_name="", mime_type="", file_size=90000),
    )
    assert incoming.has_content


def test_photo_without_caption_has_content_but_no_text():
    incoming = normalize_update(photo_update(501))
    assert incoming.text == ""
    assert len(incoming.files) == 1
    assert incoming.has_content


def test_document():
    document = {
        "file_id": "doc-1", "file_unique_id": "udoc-1", "file_name": "plan.pdf", "mime_type": "application/pdf",
        "file_size": 12345,
    }  # fmt: skip
    incoming = normalize_update(message_update(501, document=document, caption="The floor plan"))

    [file] = incoming.files
    assert file == FileRef("document", "doc-1", "udoc-1", "plan.pdf", "application/pdf", 12345)
    assert file.to_json() == {"kind": "document", **document}
    assert FileRef.from_json(file.to_json()) == file
    assert incoming.text == "The floor plan"


@pytest.mark.parametrize(
    ("kind", "attachment"),
    [
        ("voice", {"file_id": "v-1", "file_unique_id": "uv-1", "duration": 3, "mime_type": "audio/ogg"}),
        ("video_note", {"file_id": "vn-1", "file_unique_id": "uvn-1", "length": 240, "duration": 5}),
        ("video", {"file_id": "vid-1", "file_unique_id": "uvid-1", "width": 640, "height": 360, "duration": 9,
                   "file_name": "leak.mp4", "mime_type": "video/mp4", "file_size": 2048}),
    ],
)  # fmt: skip
def test_voice_video_note_and_video(kind, attachment):
    incoming = normalize_update(message_update(501, **{kind: attachment}))

    [file] = incoming.files
    assert file.kind == kind
    assert file.file_id == attachment["file_id"]
    assert file.file_unique_id == attachment["file_unique_id"]
    assert file.file_name == attachment.get("file_name", "")
    assert file.mime_type == attachment.get("mime_type", "")
    assert file.file_size == attachment.get("file_size")
    assert file.duration == attachment["duration"]  # what a transcription is capped and billed by
    assert file.to_json()["duration"] == attachment["duration"]
    assert incoming.text == ""
    assert incoming.has_content


def test_animation_is_not_repeated_as_a_document():
    gif = {"file_id": "gif-1", "file_unique_id": "ugif-1", "width": 1, "height": 1, "duration": 1}
    incoming = normalize_update(
        message_update(501, animation=gif, document={"file_id": "gif-1", "file_unique_id": "ugif-1"})
    )
    assert [file.kind for file in incoming.files] == ["animation"]


def test_shared_contact():
    contact = {"phone_number": "+491701234567", "first_name": "Anna", "last_name": "Schmidt", "user_id": 501}
    incoming = normalize_update(message_update(501, contact=contact))

    assert incoming.contact == SharedContact(
        phone_number="+491701234567", first_name="Anna", last_name="Schmidt", user_id=501
    )
    assert incoming.contact.to_json() == contact
    assert SharedContact.from_json(contact) == incoming.contact
    assert incoming.has_content


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("/start", "/start", ""),
        ("/start connect_shop", "/start", "connect_shop"),
        ("/start@mybot", "/start", ""),
        ("/START@MyBot  connect_shop ", "/start", "connect_shop"),
        ("/debug", "/debug", ""),
        ("/price list please", "/price", "list please"),
    ],
)
def test_commands(text, command, args):
    incoming = normalize_update(text_update(501, text))
    assert incoming.command == command
    assert incoming.command_args == args
    assert incoming.text == text


@pytest.mark.parametrize("text", ["hello /start", "/", "/start/now", "path/to"])
def test_text_that_is_not_a_command(text):
    assert normalize_update(text_update(501, text)).command is None


def test_caption_starting_with_a_slash_is_not_a_command():
    incoming = normalize_update(photo_update(501, caption="/start"))
    assert incoming.command is None
    assert incoming.text == "/start"


def test_message_in_a_group():
    incoming = normalize_update(text_update(-100123, "/start@mybot", sender=user(501)))
    assert incoming.chat_id == -100123
    assert incoming.chat_type == "supergroup"
    assert incoming.sender is not None
    assert incoming.sender.user_id == 501
    assert incoming.command == "/start"


def test_callback_query():
    payload = {
        "update_id": 9001,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": user(501, first_name="Bob", username="bob", language_code="ru"),
            "chat_instance": "-123456",
            "data": "match:accept:42",
            "message": {
                "message_id": 77, "date": 1700000000, "chat": {"id": 501, "type": "private", "first_name": "Bob"},
                "from": {"id": 7000000000, "is_bot": True, "first_name": "Test Bot", "username": "alpha_bot"},
                "text": "A match for you",
            },
        },
    }  # fmt: skip

    incoming = normalize_update(payload)

    assert incoming.kind == "callback_query"
    assert incoming.update_id == 9001
    assert incoming.chat_id == 501
    assert incoming.chat_type == "private"
    assert incoming.message_id == 77
    assert incoming.sender is not None
    assert (incoming.sender.user_id, incoming.sender.username, incoming.sender.language_code) == (501, "bob", "ru")
    assert incoming.callback is not None
    assert (incoming.callback.id, incoming.callback.data, incoming.callback.message_id) == (
        "4382bfdwdsb323b2d9",
        "match:accept:42",
        77,
    )
    assert incoming.text == ""
    assert not incoming.has_content


def test_callback_query_from_an_inline_message_has_no_chat():
    payload = {
        "update_id": 9002,
        "callback_query": {"id": "q1", "from": user(501), "chat_instance": "1", "inline_message_id": "im-1"},
    }
    incoming = normalize_update(payload)
    assert incoming.kind == "callback_query"
    assert incoming.chat_id is None
    assert incoming.callback is not None
    assert (incoming.callback.data, incoming.callback.message_id) == ("", None)


def test_edited_message_is_ignored():
    payload = text_update(501, "hello (edited)")
    payload["edited_message"] = payload.pop("message") | {"edit_date": 1700000100}

    incoming = normalize_update(payload)

    assert incoming == IncomingUpdate(update_id=payload["update_id"], kind="ignored")
    assert not incoming.has_content


def test_my_chat_member_is_ignored():
    payload = {
        "update_id": 9003,
        "my_chat_member": {
            "chat": {"id": 501, "type": "private", "first_name": "Anna"}, "from": user(501), "date": 1700000000,
            "old_chat_member": {"status": "member", "user": user(7000000000)},
            "new_chat_member": {"status": "kicked", "user": user(7000000000), "until_date": 0},
        },
    }  # fmt: skip
    assert normalize_update(payload).kind == "ignored"


def test_channel_post_and_unknown_update_types_are_ignored():
    post = {"message_id": 1, "date": 1700000000, "chat": {"id": -100777, "type": "channel", "title": "News"},
            "text": "news"}  # fmt: skip
    assert normalize_update({"update_id": 1, "channel_post": post}).kind == "ignored"
    assert normalize_update({"update_id": 2, "some_future_update": {"x": 1}}).kind == "ignored"


def test_payload_round_trips_through_json():
    payload = json.loads(json.dumps(photo_update(501, caption="hi")))
    assert normalize_update(payload).files[0].file_id == "big-501"


def _with_message(**changes: object) -> dict:
    payload = text_update(501, "hello")
    payload["message"].update(changes)
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "not an update",
        [1, 2, 3],
        42,
        {},
        {"message": {"text": "no update id"}},
        {"update_id": "1", "message": {}},
        {"update_id": True},
        {"update_id": 1.5},
        {"update_id": 1, "message": "text"},
        {"update_id": 1, "callback_query": ["x"]},
        _with_message(chat="oops"),
        _with_message(chat={"id": "abc", "type": "private"}),
        _with_message(text=5),
        _with_message(message_id="seven"),
        _with_message(date="yesterday"),
        _with_message(photo="big.jpg"),
        _with_message(photo=[{"file_unique_id": "u", "width": 1, "height": 1}]),
        _with_message(photo=[{"file_id": "p", "file_unique_id": "u", "width": "wide", "height": 1}]),
        _with_message(document={"file_id": "d"}),
        _with_message(contact={"first_name": "A"}),
        _with_message(contact={"phone_number": "+49", "first_name": "A", "user_id": "501"}),
        _with_message(**{"from": {"id": "501", "is_bot": False, "first_name": "A"}}),
        {"update_id": 1, "message": {"message_id": 1, "date": 1700000000, "text": "no chat"}},
        {"update_id": 1, "callback_query": {"id": "q", "chat_instance": "1"}},
        {"update_id": 1, "callback_query": {"id": 5, "chat_instance": "1", "from": user(501), "data": ["x"]}},
    ],
)
def test_malformed_input_raises_malformed_update(payload):
    with pytest.raises(MalformedUpdate) as info:
        normalize_update(payload)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
