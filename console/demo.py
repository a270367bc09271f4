"""The demo projects: one per kind, with prompts that show what a project holds, and sample activity.

The samples (conversations, a lead, matching profiles and a match) are terminal chats that never reach
Telegram, marked as demo data, so that every console screen has something real to show on a first run.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from bots.models import Chat, Message, Turn
from knowledge.models import CrawlJob
from knowledge.services import crawl_request
from leads.models import Lead
from matching.models import Match, Profile
from tenants.models import Project
from tenants.services import project_create

DEMO_SITE = Path(__file__).resolve().parent.parent / "knowledge" / "demo_site"

# A syntactically valid placeholder; Telegram rejects it until an operator sets a real token.
DEMO_TOKEN = "1000000000:demo-token-replace-me-with-botfather-token"

DEMO_PROJECTS = [
    {
        "slug": "demo-sales",
        "kind": Project.Kind.SALES,
        "name": "Demo: Northwind Cleaning (sales)",
        "prompt": (
            "You are the consultant of Northwind Cleaning, a home and office cleaning company. "
            "Answer from the knowledge base, find out what the customer needs, and collect a name and a "
            "phone number so that a manager can call back."
        ),
        "start_reply": "Hello! I am the Northwind Cleaning assistant. What would you like cleaned?",
    },
    {
        "slug": "demo-matching",
        "kind": Project.Kind.MATCHING,
        "name": "Demo: IT matchmaker",
        "prompt": "You match IT job seekers with employers and contractors. Be brief and friendly.",
        "start_reply": "Hi! Tell me about yourself: are you looking for work or for people?",
    },
]


def demo_site_files() -> list[tuple[str, bytes]]:
    """The bundled website of the demo business (English and Russian pages)."""
    return [(str(path.relative_to(DEMO_SITE)), path.read_bytes()) for path in sorted(DEMO_SITE.glob("*/*.html"))]


def demo_knowledge_ensure(project: Project) -> CrawlJob | None:
    """Crawl the bundled pages into the demo sales project once (the worker runs the job)."""
    if project.crawl_jobs.exists():
        return None
    return crawl_request(project=project, files=demo_site_files())


DEMO_CHAT_IDS = range(990_001, 990_004)  # terminal chats of the samples, apart from `manage.py chat`'s 0

SALES_SAMPLES = [
    ("Anna", [("How much is window cleaning for a 3-room flat?",
               "Window cleaning costs 7 EUR per window, frames and sills included. How many windows do you have?"),
              ("12 windows, next Saturday if possible. I'm Anna, +49 30 1234567.",
               "Thank you, Anna! I have passed your request on: a manager will call you to confirm Saturday.")]),
    ("Boris", [("Do you clean offices on weekends?",
                "Yes, office cleaning is available on Saturdays and Sundays at the weekday price.")]),
]  # fmt: skip
MATCHING_SAMPLES = [
    ("Maria", Profile.Role.SEEKER, "Python backend developer, 5 years of Django and PostgreSQL, looking for a remote "
     "role in a product team.", "Berlin"),
    ("TechCorp", Profile.Role.PROVIDER, "Hiring a senior Python/Django engineer for a remote payments team.",
     "Remote (EU)"),
    ("Oleg", Profile.Role.SEEKER, "Frontend developer (React, TypeScript), open to contract work.", "Riga"),
]  # fmt: skip


def _demo_chat(project: Project, chat_id: int, name: str) -> Chat:
    return Chat.objects.create(
        project=project, telegram_chat_id=chat_id, channel=Chat.Channel.TERMINAL, first_name=name,
        last_user_message_at=timezone.now(),
    )  # fmt: skip


def _demo_exchange(chat: Chat, question: str, answer: str, at: object) -> None:
    turn = Turn.objects.create(
        project=chat.project, chat=chat, trigger=Turn.Trigger.USER, status=Turn.Status.SENT,
        outcome=Turn.Outcome.ANSWERED, user_text=question, reply=answer, model="demo/sample",
        cost_usd=Decimal("0.000400"), finished_at=at + timedelta(seconds=3),
    )  # fmt: skip
    message = Message.objects.create(project=chat.project, chat=chat, turn=turn, text=question)
    Message.objects.filter(pk=message.pk).update(created_at=at)
    Turn.objects.filter(pk=turn.pk).update(created_at=at + timedelta(seconds=1))


def demo_activity_ensure(project: Project) -> bool:
    """Sample conversations (and a lead, or profiles and a match) once, for a project without chats."""
    if project.chats.exists():
        return False
    start = timezone.now() - timedelta(days=2)
    with transaction.atomic():
        chats = [
            _demo_chat(project, chat_id, name)
            for chat_id, (name, *_rest) in zip(
                DEMO_CHAT_IDS, SALES_SAMPLES if project.kind == Project.Kind.SALES else MATCHING_SAMPLES, strict=False
            )
        ]
        if project.kind == Project.Kind.SALES:
            for index, (chat, (_name, exchanges)) in enumerate(zip(chats, SALES_SAMPLES, strict=True)):
                for step, (question, answer) in enumerate(exchanges):
                    _demo_exchange(chat, question, answer, start + timedelta(hours=index * 5, minutes=step * 2))
            Lead.objects.create(
                project=project, chat=chats[0], status=Lead.Status.FAILED, client_status="hot", name="Anna",
                contact="+49 30 1234567", service="window cleaning, 12 windows", city="Berlin",
                summary="Demo sample: 12 windows next Saturday; call Anna back to confirm. (Not sent: the demo "
                "project has no lead group; connect one on the project page.)",
            )  # fmt: skip
            return True
        profiles = []
        for chat, (name, role, summary, location) in zip(chats, MATCHING_SAMPLES, strict=True):
            _demo_exchange(chat, f"Hi, I'm {name}. {summary}", "Thanks! Here is your profile card.", start)
            profiles.append(Profile.objects.create(
                project=project, chat=chat, role=role, summary=summary, matching_summary=summary, location=location,
                state=Profile.State.READY, profile_updated_at=start,
            ))  # fmt: skip
        Match.objects.create(
            project=project, user_a=profiles[0], user_b=profiles[1], round=1, similarity=0.71,
            status=Match.Status.CONNECTED, reason="Demo sample: a Django developer and a team hiring one, both remote.",
        )  # fmt: skip
    return True


def demo_ensure() -> list[tuple[Project, bool]]:
    results = []
    for spec in DEMO_PROJECTS:
        project = Project.objects.filter(slug=spec["slug"]).first()
        created = project is None
        if project is None:
            project = project_create(token=DEMO_TOKEN, **spec)
        if project.kind == Project.Kind.SALES:
            demo_knowledge_ensure(project)
        demo_activity_ensure(project)
        results.append((project, created))
    return results
