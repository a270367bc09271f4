"""The draft preview on its own: where it applies, its throttle, and how it behaves when Telegram pushes back."""

import asyncio
import contextlib
import itertools

import pytest

from bots import reply_drafts
from bots.event_loop import run_sync
from bots.models import Chat
from bots.reply_drafts import ReplyDraft, draft_preview, reply_draft_for
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(fake_telegram):
    project = ProjectFactory(slug="drafty")
    fake_telegram.register_bot(project.bot_token, "drafty_bot")
    reply_drafts._drafts_off_until.pop(project.bot_token, None)
    return project


def chat_of(project, chat_id: int, **fields) -> Chat:
    return Chat.objects.create(project=project, telegram_chat_id=chat_id, **fields)


async def stream_words(draft: ReplyDraft, words: int, every: float) -> None:
    async with draft:
        text = ""
        for number in range(words):
            text += f" word{number}"
            draft.show(text)
            await asyncio.sleep(every)


def test_only_private_telegram_chats_stream_and_the_setting_switches_it_off(project, settings):
    private = chat_of(project, 11)
    group = chat_of(project, -100, chat_type="supergroup")
    terminal = chat_of(project, 12, channel=Chat.Channel.TERMINAL)
    assert reply_draft_for(project=project, chat=private, draft_id=1) is not None
    assert reply_draft_for(project=project, chat=group, draft_id=1) is None
    assert reply_draft_for(project=project, chat=terminal, draft_id=1) is None
    settings.TELEGRAM_STREAM_REPLIES = False
    assert reply_draft_for(project=project, chat=private, draft_id=1) is None


def test_updates_are_throttled_and_the_latest_text_wins(project, fake_telegram):
    chat = chat_of(project, 21)
    draft = ReplyDraft(project=project, chat=chat, draft_id=7)
    run_sync(stream_words(draft, words=30, every=0.05))  # 1.5 s of tokens, one every 50 ms

    drafts = fake_telegram.drafts(token=project.bot_token, chat_id=21)
    assert 2 <= len(drafts) <= 4  # not 30
    assert drafts[0].params["text"] == "word0"  # the first token shows at once
    assert all(b.at - a.at >= 0.45 for a, b in itertools.pairwise(drafts))
    assert {d.params["draft_id"] for d in drafts} == {7}
    assert draft.updates == len(drafts)


def test_a_429_is_waited_out_before_the_next_update(project, fake_telegram):
    chat = chat_of(project, 31)
    fake_telegram.fail_next("sendMessageDraft", status=429, retry_after=1)
    run_sync(stream_words(ReplyDraft(project=project, chat=chat, draft_id=8), words=30, every=0.05))

    calls = fake_telegram.calls_to("sendMessageDraft", token=project.bot_token)
    assert calls[0].failed_status == 429
    assert calls[1].failed_status is None
    assert calls[1].at - calls[0].at >= 0.95


def test_a_draft_refused_by_a_blocked_chat_stops_the_preview_and_never_raises(project, fake_telegram):
    chat = chat_of(project, 41)
    fake_telegram.fail_next("sendMessageDraft", status=403, description="Forbidden: bot was blocked by the user")
    run_sync(stream_words(ReplyDraft(project=project, chat=chat, draft_id=9), words=20, every=0.05))
    assert len(fake_telegram.calls_to("sendMessageDraft", token=project.bot_token)) == 1
    assert not fake_telegram.calls_to("sendMessage")  # no fallback preview for a chat that refuses the bot
    # (a draft refused with 400 falls back to an edited message: tests/bots/test_reply_edits.py)


def test_a_long_answer_previews_the_part_being_written():
    text = ("A sentence of the long answer. " * 200).strip()
    preview = draft_preview(text)
    assert len(preview) <= 4096
    assert text.endswith(preview)


def test_a_draft_whose_cancellation_is_swallowed_still_lets_the_reply_go(project, monkeypatch):
    # On Python 3.11 `asyncio.wait_for` (and some libraries) can swallow a cancellation that arrives as the
    # awaited call completes: the update in flight then returns normally. The turn must still get past the
    # draft (seen under load: turns stuck for ever with "typing..." shown, their leases kept alive).
    async def update_that_swallows_its_cancellation(self: ReplyDraft, text: str) -> float:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return 0.0

    monkeypatch.setattr(ReplyDraft, "_update", update_that_swallows_its_cancellation)
    draft = ReplyDraft(project=project, chat=chat_of(project, 51), draft_id=10)

    async def turn() -> str:
        async with asyncio.timeout(20):  # a bound for the old behaviour (waiting for ever), not a timing check
            await stream_words(draft, words=3, every=0.05)
        return "replied"

    assert run_sync(turn()) == "replied"
