"""A project filled with one row of every tenant model, each carrying a marker string to look for."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from bots.models import Chat, Generation, LLMCall, Message, TelegramUpdate, Turn
from knowledge.models import BM25Index, Chunk, CrawlJob, GoldenQuestion, Page, RetrievalEvaluation, Source, url_hash
from leads.models import CrmWebhook, FollowUp, Lead, LeadDispatch
from matching.models import Broadcast, BroadcastDelivery, Match, MatchingState, Profile
from tenants.models import Project


@dataclass
class World:
    project: Project
    marker: str
    chat: Chat
    lead: Lead
    turn: Turn


def tenant_world(project: Project, marker: str, *, chat_id: int) -> World:
    """One of everything for `project`; every free-text field says `marker`."""
    now = timezone.now()
    chat = Chat.objects.create(
        project=project, telegram_chat_id=chat_id, user_id=chat_id, username=f"{marker}_user", first_name=marker,
        last_user_message_at=now, state={"notes": f"name: {marker}"},
    )  # fmt: skip
    other = Chat.objects.create(project=project, telegram_chat_id=chat_id + 1, user_id=chat_id + 1, first_name=marker)
    TelegramUpdate.objects.create(
        project=project,
        update_id=chat_id,
        payload={
            "update_id": chat_id,
            "message": {"text": marker, "from": {"id": chat_id}, "chat": {"id": chat_id, "type": "private"}},
        },
    )
    generation = Generation.objects.create(
        project=project, kind=Generation.Kind.CHAT_TURN, chat=chat, status=Generation.Status.DONE, scheduled_for=now,
        error=marker, cost_usd=Decimal("0.01"),
    )  # fmt: skip
    turn = Turn.objects.create(
        project=project, chat=chat, generation=generation, status=Turn.Status.SENT, user_text=marker,
        reply=f"{marker} reply", model=f"openai/{marker}", cost_usd=Decimal("0.01"), finished_at=now,
        blocks=[{"role": "assistant", "blocks": [{"type": "tool_use", "id": "t1", "name": "hybrid_search",
                                                  "input": {"query": marker}}]},
                {"role": "user", "blocks": [{"type": "tool_result", "tool_use_id": "t1", "content": marker,
                                             "is_error": False}]}],
    )  # fmt: skip
    Message.objects.create(project=project, chat=chat, turn=turn, text=f"{marker} question")
    LLMCall.objects.create(
        project=project, generation=generation, purpose="chat_turn", provider="openai", model=f"openai/{marker}",
        status=LLMCall.Status.OK, cost_usd=Decimal("0.01"), error=marker,
    )  # fmt: skip
    lead = Lead.objects.create(project=project, chat=chat, summary=f"{marker} summary", name=marker, contact=marker)
    LeadDispatch.objects.create(lead=lead, backend="telegram_group", error=marker)
    CrmWebhook.objects.create(project=project, url=f"https://{marker.lower()}.example/hook", secret=marker)
    FollowUp.objects.create(chat=chat, project=project, fire_at=now + timedelta(hours=1))
    source = Source.objects.create(project=project, kind=Source.Kind.URL, url=f"https://{marker.lower()}.example/")
    job = CrawlJob.objects.create(project=project, error=marker)
    job.sources.add(source)
    page_url = f"https://{marker.lower()}.example/page"
    page = Page.objects.create(project=project, source=source, job=job, url=page_url, url_hash=url_hash(page_url),
                               title=marker, text=marker)  # fmt: skip
    Chunk.objects.create(project=project, page=page, index=0, topic=marker, text=marker)
    BM25Index.objects.create(project=project, language="en", vocabulary={marker: 1})
    golden = GoldenQuestion.objects.create(project=project, question=f"{marker} question", expected_url=page_url)
    RetrievalEvaluation.objects.create(
        project=project, job=job, trigger="crawl", questions=1, recall_at_3=0.0, mrr=0.0,
        results=[{"question_id": golden.pk, "question": golden.question, "expected_url": page_url, "rank": None,
                  "previous_rank": 1}],
    )  # fmt: skip
    seeker = Profile.objects.create(project=project, chat=chat, role="seeker", summary=marker, location=marker)
    provider = Profile.objects.create(project=project, chat=other, role="provider", summary=marker)
    Match.objects.create(project=project, user_a=seeker, user_b=provider, round=1, status="qualified", reason=marker)
    MatchingState.objects.create(project=project, last_outcome=marker)
    broadcast = Broadcast.objects.create(project=project, text=marker)
    BroadcastDelivery.objects.create(broadcast=broadcast, project=project, profile=seeker, chat=chat, error=marker)
    return World(project=project, marker=marker, chat=chat, lead=lead, turn=turn)


def exchange(project, chat_id: int, *, asked: datetime, answered_after: float, cost: str, status: str = "") -> None:
    """One customer message answered by the bot `answered_after` seconds later, at a cost."""
    chat, _ = Chat.objects.get_or_create(project=project, telegram_chat_id=chat_id)
    turn = Turn.objects.create(project=project, chat=chat, status=Turn.Status.SENT, outcome="answered", reply="ok",
                               finished_at=asked + timedelta(seconds=answered_after))  # fmt: skip
    message = Message.objects.create(project=project, chat=chat, turn=turn, text="question")
    Message.objects.filter(pk=message.pk).update(created_at=asked)
    Turn.objects.filter(pk=turn.pk).update(created_at=asked)
    call = LLMCall.objects.create(project=project, purpose="chat_turn", provider="openai", model="openai/m",
                                  status="ok", cost_usd=Decimal(cost))  # fmt: skip
    LLMCall.objects.filter(pk=call.pk).update(created_at=asked)
    if status:
        lead = Lead.objects.create(project=project, chat=chat, summary="s", client_status=status)
        Lead.objects.filter(pk=lead.pk).update(created_at=asked)
