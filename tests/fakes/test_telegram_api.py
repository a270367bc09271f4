"""Tests of the fake Bot API server, driven only through python-telegram-bot."""

import asyncio
import io
import warnings
from datetime import timedelta

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaDocument, InputMediaPhoto, Message
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from tests.fakes.telegram_api import UploadedFile, fake_telegram, fake_telegram_server  # noqa: F401

TOKEN = "123456:TEST-token"
CHAT = 4242


def run(fake, action, token=TOKEN):
    """Run ``action(bot)`` with a fresh Bot pointed at the fake, in a fresh event loop."""

    async def main():
        bot = Bot(token, base_url=f"{fake.base_url}/bot", base_file_url=f"{fake.base_url}/file/bot")
        async with bot:
            return await action(bot)

    return asyncio.run(main())


@pytest.fixture
def fake(fake_telegram):  # noqa: F811 - the fixture imported above
    fake_telegram.register_bot(TOKEN, "switchboard_test_bot", first_name="Switchboard")
    return fake_telegram


def test_get_me_returns_registered_bot(fake):
    me = run(fake, lambda bot: bot.get_me())

    assert (me.id, me.username, me.first_name, me.is_bot) == (123456, "switchboard_test_bot", "Switchboard", True)
    assert fake.calls_to("getMe")[-1].token == TOKEN


def test_unknown_token_raises_invalid_token(fake):
    with pytest.raises(InvalidToken):
        run(fake, lambda bot: bot.get_me(), token="999:unknown")

    [call] = fake.calls_to("getMe", token="999:unknown")
    assert call.failed_status == 401


def test_set_webhook_records_secret_and_allowed_updates(fake):
    async def action(bot):
        await bot.set_webhook("https://example.com/tg/abc", secret_token="s3cret_TOKEN", allowed_updates=["message"])
        return await bot.get_webhook_info()

    info = run(fake, action)

    assert fake.webhook_info(TOKEN) == {
        "url": "https://example.com/tg/abc",
        "secret_token": "s3cret_TOKEN",
        "allowed_updates": ["message"],
        "max_connections": None,
        "drop_pending_updates": False,
    }
    assert info.url == "https://example.com/tg/abc"
    assert info.allowed_updates == ("message",)
    with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
        run(fake, lambda bot: bot.set_webhook("http://example.com/hook"))
    run(fake, lambda bot: bot.delete_webhook())
    assert fake.webhook_info(TOKEN) is None


def test_send_message_is_recorded_and_parsed(fake):
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])

    async def action(bot):
        first = await bot.send_message(CHAT, "Hello <b>there</b>", parse_mode="HTML", reply_markup=markup)
        second = await bot.send_message(-100777, "group hello")
        third = await bot.send_message(CHAT, "again")
        return first, second, third

    first, second, third = run(fake, action)

    assert isinstance(first, Message)
    assert (first.chat.id, first.chat.type, first.from_user.username) == (CHAT, "private", "switchboard_test_bot")
    assert first.text == "Hello <b>there</b>"
    assert first.reply_markup == markup
    assert (second.chat.type, second.message_id) == ("supergroup", 1)
    assert third.message_id == first.message_id + 1
    call = fake.wait_for("sendMessage", count=3)[0]
    assert call.params["chat_id"] == CHAT
    assert call.params["parse_mode"] == "HTML"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}


def test_text_limits_raise_bad_request(fake):
    with pytest.raises(BadRequest, match="Message is too long"):
        run(fake, lambda bot: bot.send_message(CHAT, "x" * 4097))
    with pytest.raises(BadRequest, match="Message text is empty"):
        run(fake, lambda bot: bot.send_message(CHAT, "   "))
    with pytest.raises(BadRequest, match="Message caption is too long"):
        run(fake, lambda bot: bot.send_document(CHAT, b"data", filename="a.txt", caption="c" * 1025))

    ok = run(fake, lambda bot: bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML"))
    assert len(ok.text) == 4103  # markup does not count towards the limit
    assert [c.failed_status for c in fake.calls_to("sendMessage")] == [400, 400, None]


def test_rate_limit_raises_retry_after(fake):
    fake.fail_next("sendMessage", status=429, retry_after=7)

    with pytest.raises(RetryAfter) as excinfo:
        run(fake, lambda bot: bot.send_message(CHAT, "hi"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retry_after = excinfo.value.retry_after
    assert retry_after in (7, timedelta(seconds=7))

    run(fake, lambda bot: bot.send_message(CHAT, "hi again"))
    assert [c.failed_status for c in fake.calls_to("sendMessage")] == [429, None]


def test_blocked_chat_raises_forbidden(fake):
    fake.block_chat(TOKEN, CHAT)

    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        run(fake, lambda bot: bot.send_message(CHAT, "hi"))
    with pytest.raises(Forbidden):
        run(fake, lambda bot: bot.send_chat_action(CHAT, "typing"))
    assert run(fake, lambda bot: bot.send_message(CHAT + 1, "other user")).chat.id == CHAT + 1


def test_bad_gateway_raises_network_error_and_attempts_are_counted(fake):
    fake.fail_next("sendMessage", status=502, times=2)

    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            run(fake, lambda bot: bot.send_message(CHAT, "hi"))
    run(fake, lambda bot: bot.send_message(CHAT, "hi"))

    assert [c.failed_status for c in fake.calls_to("sendMessage")] == [502, 502, None]


def test_delay_next_simulates_a_slow_server(fake):
    fake.delay_next("sendMessage", 0.6)

    with pytest.raises(TimedOut):
        run(fake, lambda bot: bot.send_message(CHAT, "slow", read_timeout=0.2))

    [slow] = fake.wait_for("sendMessage", timeout=5)
    assert slow.ok  # the server answered normally once the delay passed; the client had given up
    assert run(fake, lambda bot: bot.send_message(CHAT, "fast", read_timeout=2)).text == "fast"


def test_send_document_uploads_multipart(fake):
    message = run(fake, lambda bot: bot.send_document(CHAT, io.BytesIO(b"%PDF-1.4 fake"), filename="offer.pdf"))

    [call] = fake.calls_to("sendDocument")
    upload = call.params["document"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.content, upload.content_type) == ("offer.pdf", b"%PDF-1.4 fake", "application/pdf")
    assert call.files["document"] is upload
    assert (message.document.file_name, message.document.file_size) == ("offer.pdf", 13)


def test_send_media_group_resolves_attachments(fake):
    media = [InputMediaPhoto(b"photo-one", caption="first"), InputMediaPhoto(b"photo-two")]

    messages = run(fake, lambda bot: bot.send_media_group(CHAT, media))

    assert len(messages) == 2
    assert messages[0].caption == "first"
    assert messages[0].media_group_id == messages[1].media_group_id
    assert [m.message_id for m in messages] == [1, 2]
    [call] = fake.calls_to("sendMediaGroup")
    items = call.params["media"]
    assert [item["type"] for item in items] == ["photo", "photo"]
    assert [item["media"].content for item in items] == [b"photo-one", b"photo-two"]
    assert {f.name for f in call.files.values()} == set(call.files)
    assert len(call.files) == 2


def test_media_group_with_one_item_is_rejected(fake):
    with pytest.raises(BadRequest, match=r"(?i)wrong number of media"):
        run(fake, lambda bot: bot.send_media_group(CHAT, [InputMediaPhoto(b"alone")]))

    assert fake.calls_to("sendMediaGroup")[0].failed_status == 400


def test_edit_message_media_with_document(fake):
    async def action(bot):
        sent = await bot.send_message(CHAT, "Preparing your file...")
        media = InputMediaDocument(io.BytesIO(b"col1,col2\n"), filename="report.csv", caption="Your report")
        return sent, await bot.edit_message_media(media, chat_id=CHAT, message_id=sent.message_id)

    sent, edited = run(fake, action)

    assert edited.message_id == sent.message_id
    assert (edited.document.file_name, edited.caption, edited.text) == ("report.csv", "Your report", None)
    assert edited.edit_date is not None
    media = fake.calls_to("editMessageMedia")[0].params["media"]
    assert media["type"] == "document"
    assert (media["media"].filename, media["media"].content) == ("report.csv", b"col1,col2\n")


def test_edit_message_text_and_not_modified(fake):
    async def action(bot):
        sent = await bot.send_message(CHAT, "draft")
        edited = await bot.edit_message_text("final", chat_id=CHAT, message_id=sent.message_id)
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("final", chat_id=CHAT, message_id=sent.message_id)
        return edited

    assert run(fake, action).text == "final"


def test_get_updates_honours_offset_and_long_polls(fake):
    for message_id, text in ((10, "a"), (11, "b")):
        chat = {"id": CHAT, "type": "private"}
        fake.push_update(TOKEN, {"message": {"message_id": message_id, "date": 0, "chat": chat, "text": text}})

    async def action(bot):
        first = await bot.get_updates()
        second = await bot.get_updates(offset=first[0].update_id + 1)
        third = await bot.get_updates(offset=second[-1].update_id + 1, timeout=5)
        return first, second, third

    first, second, third = run(fake, action)

    assert [u.message.text for u in first] == ["a", "b"]
    assert [u.update_id for u in second] == [2]
    assert third == ()
    waited = fake.calls_to("getUpdates")[-1]
    assert waited.params["timeout"] == 5
    assert run(fake, lambda bot: bot.send_message(CHAT, "reply")).message_id == 12


def test_get_file_serves_bytes(fake):
    fake.add_file("FILE-1", b"voice bytes", file_path="voice/file_1.oga")

    async def action(bot):
        tg_file = await bot.get_file("FILE-1")
        return tg_file, await tg_file.download_as_bytearray()

    tg_file, data = run(fake, action)

    assert (tg_file.file_path, tg_file.file_size) == (f"{fake.base_url}/file/bot{TOKEN}/voice/file_1.oga", 11)
    assert bytes(data) == b"voice bytes"
    with pytest.raises(BadRequest, match="Invalid file_id"):
        run(fake, lambda bot: bot.get_file("missing"))


def test_unknown_method_and_wait_for_timeout(fake):
    with pytest.raises(EndPointNotFound):
        run(fake, lambda bot: bot.do_api_request("noSuchMethod", api_kwargs={"x": 1}))
    assert fake.calls_to("noSuchMethod")[0].failed_status == 404

    with pytest.raises(AssertionError, match=r"expected 1 call\(s\) to sendMessage.*received: getMe\[ok\]"):
        fake.wait_for("sendMessage", timeout=0.2)


def test_message_drafts_are_recorded_as_previews_and_validated_like_the_bot_api(fake):
    async def action(bot):
        assert await bot.send_message_draft(chat_id=CHAT, draft_id=5, text="Hel") is True
        assert await bot.send_message_draft(chat_id=CHAT, draft_id=5, text="Hello", message_thread_id=3)
        assert await bot.send_message_draft(chat_id=CHAT, draft_id=5)  # no text: the "Thinking..." placeholder
        for bad in ({"chat_id": -100123, "draft_id": 5, "text": "x"}, {"chat_id": CHAT, "draft_id": 0, "text": "x"},
                    {"chat_id": CHAT, "draft_id": 5, "text": "x" * 4097}):  # fmt: skip
            with pytest.raises(BadRequest):
                await bot.send_message_draft(**bad)

    run(fake, action)
    drafts = fake.drafts(token=TOKEN, chat_id=CHAT)
    assert [(d.params["draft_id"], d.params.get("text")) for d in drafts] == [(5, "Hel"), (5, "Hello"), (5, None)]
    assert drafts[1].params["message_thread_id"] == 3
    assert not fake.calls_to("sendMessage")  # a draft is never a message


def test_forum_topics_get_their_own_threads_and_a_deleted_topic_is_refused(fake):
    group, plain = -1009001, -1009002
    fake.make_forum(group)

    async def action(bot):
        forum, other = await bot.get_chat(group), await bot.get_chat(plain)
        topic = await bot.create_forum_topic(group, "Lead #7 · Anna")
        posted = await bot.send_message(group, "summary", message_thread_id=topic.message_thread_id)
        copy = await bot.copy_message(group, from_chat_id=group, message_id=posted.message_id,
                                      message_thread_id=topic.message_thread_id)  # fmt: skip
        with pytest.raises(BadRequest, match="not a forum"):
            await bot.create_forum_topic(plain, "Lead #8")
        fake.delete_topic(group, topic.message_thread_id)
        with pytest.raises(BadRequest, match="thread not found"):
            await bot.send_document(group, b"x", filename="t.txt", message_thread_id=topic.message_thread_id)
        return forum, other, topic, posted, copy

    forum, other, topic, posted, copy = run(fake, action)

    assert (forum.is_forum, bool(other.is_forum)) == (True, False)  # Telegram omits the flag when false
    assert topic.name == "Lead #7 · Anna"
    assert (posted.message_thread_id, posted.is_topic_message) == (topic.message_thread_id, True)
    assert posted.chat.is_forum is True
    service = fake.stored_message(TOKEN, group, topic.message_thread_id)
    assert service["forum_topic_created"]["name"] == "Lead #7 · Anna"
    assert fake.calls_to("copyMessage")[0].params["message_thread_id"] == topic.message_thread_id
    assert copy.message_id > posted.message_id
    assert fake.topics(group) == {}
