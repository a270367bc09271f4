"""The edited-message preview, the fallback where drafts are unavailable: throttled, 429-aware, never the reply."""

import asyncio
import itertools

import pytest

from bots import reply_drafts
from bots.event_loop import run_sync
from bots.models import Chat, Turn
from bots.reply_drafts import ReplyDraft, reply_draft_for
from bots.reply_edits import EDIT_INTERVAL_SECONDS, UNFINISHED, reply_preview_remove
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the preview's id is stored from the loop's thread


@pytest.fixture
def project(fake_telegram):
    project = ProjectFactory(slug="edity")
    fake_telegram.register_bot(project.bot_token, "edity_bot")
    reply_drafts._drafts_off_until.pop(project.bot_token, None)
    yield project
    reply_drafts._drafts_off_until.pop(project.bot_token, None)


@pytest.fixture
def other(fake_telegram):
    other = ProjectFactory(slug="other")
    fake_telegram.register_bot(other.bot_token, "other_bot")
    return other


def turn_in(project, chat_id: int) -> Turn:
    chat = Chat.objects.create(project=project, telegram_chat_id=chat_id)
    turn = Turn.objects.create(project_id=project.pk, chat=chat, trigger=Turn.Trigger.USER)
    turn.chat, turn.project = chat, project
    return turn


async def stream_words(draft: ReplyDraft, words: int, every: float) -> str:
    text = ""
    async with draft:
        for number in range(words):
            text += f" word{number}"
            draft.show(text.strip())
            await asyncio.sleep(every)
    return text.strip()


def bot_messages(fake_telegram, project, chat_id: int) -> list[str]:
    return [m["text"] for m in fake_telegram.chat_messages(project.bot_token, chat_id)]


def test_without_drafts_the_answer_streams_into_one_silent_message_edited_at_a_throttle(project, other, fake_telegram):
    fake_telegram.fail_next("sendMessageDraft", status=404, description="Not Found: method not found")
    turn = turn_in(project, 21)
    draft = reply_draft_for(project=project, chat=turn.chat, draft_id=turn.pk, turn=turn)
    written = run_sync(stream_words(draft, words=40, every=0.1))  # 4 s of tokens

    [post] = fake_telegram.calls_to("sendMessage", token=project.bot_token)
    assert post.params["disable_notification"] is True  # the notification comes with the complete reply
    assert post.params["text"].endswith(UNFINISHED)
    edits = [c for c in fake_telegram.calls_to("editMessageText", token=project.bot_token) if c.ok]
    assert 1 <= len(edits) <= 4  # not 40
    assert {e.params["message_id"] for e in edits} == {post.result["message_id"]}
    assert all(b.at - a.at >= EDIT_INTERVAL_SECONDS - 0.05 for a, b in itertools.pairwise([post, *edits]))
    shown = [c.params["text"].removesuffix(UNFINISHED) for c in [post, *edits]]
    assert all(written.startswith(text) for text in shown)
    assert len(shown[-1]) > len(shown[0])
    # The preview is known to the turn at once (a crash must not lose track of it), and only this bot's chat.
    assert turn.preview_message_id == post.result["message_id"]
    assert Turn.objects.get(pk=turn.pk).preview_message_id == post.result["message_id"]
    assert bot_messages(fake_telegram, project, 21) == [edits[-1].params["text"]]
    assert not fake_telegram.calls_to("sendMessage", token=other.bot_token)

    # Drafts are off for this bot now: the next turn previews by edits without asking for a draft.
    draft = reply_draft_for(project=project, chat=turn.chat, draft_id=turn.pk + 1)
    assert draft is not None
    assert draft.edits is not None
    assert len(fake_telegram.calls_to("sendMessageDraft")) == 1

    run_sync(reply_preview_remove(turn=turn))
    assert bot_messages(fake_telegram, project, 21) == []
    assert Turn.objects.get(pk=turn.pk).preview_message_id is None


def test_a_refused_draft_falls_back_to_edits_for_this_turn_only(project, fake_telegram):
    fake_telegram.fail_next("sendMessageDraft", status=400, description="Bad Request: TEXTDRAFT_PEER_INVALID")
    turn = turn_in(project, 31)
    run_sync(stream_words(ReplyDraft(project=project, chat=turn.chat, draft_id=9, turn=turn), words=10, every=0.1))

    assert len(fake_telegram.calls_to("sendMessageDraft", token=project.bot_token)) == 1
    assert len(fake_telegram.calls_to("sendMessage", token=project.bot_token)) == 1
    # A 400 concerns this chat only: the bot's next turn tries drafts again.
    assert reply_draft_for(project=project, chat=turn.chat, draft_id=10).edits is None


def test_a_429_on_an_edit_defers_the_next_edit_by_its_retry_after(project, fake_telegram):
    reply_drafts._drafts_off_until[project.bot_token] = float("inf")
    fake_telegram.fail_next("editMessageText", status=429, retry_after=3)
    turn = turn_in(project, 41)
    draft = reply_draft_for(project=project, chat=turn.chat, draft_id=turn.pk, turn=turn)
    written = run_sync(stream_words(draft, words=60, every=0.1))  # 6 s of tokens

    edits = fake_telegram.calls_to("editMessageText", token=project.bot_token)
    assert edits[0].failed_status == 429
    assert edits[1].failed_status is None
    assert edits[1].at - edits[0].at >= 2.95  # nothing in between: the flood wait was respected
    assert not fake_telegram.calls_to("sendMessageDraft")
    assert len(fake_telegram.calls_to("sendMessage")) == 1  # one preview message, never a second post
    assert written.startswith(bot_messages(fake_telegram, project, 41)[0].removesuffix(UNFINISHED))


def test_a_turn_composed_again_edits_its_earlier_preview_instead_of_posting_another(project, fake_telegram):
    turn = turn_in(project, 51)
    run_sync(stream_words(ReplyDraft(project=project, chat=turn.chat, draft_id=1, turn=turn, edits=True), 3, 0.1))
    [post] = fake_telegram.calls_to("sendMessage")

    again = Turn.objects.get(pk=turn.pk)  # as the recovered worker loads it
    again.chat, again.project = turn.chat, project
    draft = reply_draft_for(project=project, chat=again.chat, draft_id=again.pk, turn=again)
    assert draft.edits is not None  # drafts work, but the preview message exists: it is reused
    run_sync(stream_words(draft, words=3, every=0.1))

    assert len(fake_telegram.calls_to("sendMessage")) == 1
    assert fake_telegram.calls_to("editMessageText")[-1].params["message_id"] == post.result["message_id"]
