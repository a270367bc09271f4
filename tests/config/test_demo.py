from io import StringIO

import pytest
from django.core.management import call_command

from bots.models import Chat, Turn
from console.dashboard import dashboard_period, project_dashboard
from console.demo import demo_site_files
from knowledge.models import CrawlJob, Source
from leads.models import Lead
from matching.models import Match, Profile
from tenants.models import Project

pytestmark = pytest.mark.django_db


def test_demo_creates_both_kinds_and_queues_the_bundled_knowledge_base_once():
    call_command("demo", stdout=StringIO())
    call_command("demo", stdout=StringIO())

    assert set(Project.objects.values_list("slug", "kind")) == {("demo-sales", "sales"), ("demo-matching", "matching")}
    [job] = CrawlJob.objects.all()
    assert job.project.slug == "demo-sales"
    titles = set(Source.objects.values_list("title", flat=True))
    assert titles == {name for name, _ in demo_site_files()}
    assert any(name.startswith("en/") for name in titles)
    assert any(name.startswith("ru/") for name in titles)


def test_demo_fills_every_screen_with_sample_activity_once():
    call_command("demo", stdout=StringIO())
    call_command("demo", stdout=StringIO())
    sales, matching = Project.objects.get(slug="demo-sales"), Project.objects.get(slug="demo-matching")

    assert Chat.objects.filter(project=sales).count() == 2
    assert Turn.objects.filter(project=sales, outcome=Turn.Outcome.ANSWERED).count() == 3
    [lead] = Lead.objects.filter(project=sales)
    assert lead.status == Lead.Status.FAILED  # honest: the demo project has no lead group to send it to
    assert Profile.objects.filter(project=matching).count() == 3
    assert Match.objects.filter(project=matching, status=Match.Status.CONNECTED).count() == 1
    assert not Lead.objects.filter(project=matching).exists()
    assert set(Chat.objects.values_list("channel", flat=True)) == {Chat.Channel.TERMINAL}  # never Telegram
    board = project_dashboard(project=sales, period=dashboard_period(project=sales, name="week"))
    assert (board.conversations, board.messages, board.replies, board.leads) == (2, 3, 3, 1)
