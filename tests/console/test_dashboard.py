"""The project dashboard: a period's figures, computed per project, and charts drawn in the page."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from bots.models import Chat
from console.dashboard import PeriodInvalid, dashboard_period, project_dashboard
from matching.models import Match, Profile
from tenants.models import Membership
from tests.console.world import exchange
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def activity(project_a, project_b):
    project_a.weekly_budget_usd = Decimal("7.00")
    project_a.save()
    exchange(project_a, 1, asked=NOW - timedelta(days=1), answered_after=2, cost="0.50", status="hot")
    exchange(project_a, 1, asked=NOW - timedelta(days=1, hours=1), answered_after=4, cost="0.25")
    exchange(project_a, 2, asked=NOW - timedelta(days=2), answered_after=10, cost="0.25", status="cold")
    exchange(project_a, 3, asked=NOW - timedelta(days=3), answered_after=6, cost="1.00", status="hot")
    exchange(project_a, 4, asked=NOW - timedelta(days=20), answered_after=1, cost="5.00", status="hot")  # earlier
    exchange(project_b, 1, asked=NOW - timedelta(days=1), answered_after=99, cost="9.00", status="hot")  # other tenant
    return project_a


def test_a_weeks_figures_count_only_the_project_and_the_period(activity):
    board = project_dashboard(project=activity, period=dashboard_period(project=activity, name="week", now=NOW))

    assert (board.conversations, board.messages, board.replies) == (3, 4, 4)
    assert board.leads_by_client_status == {"cold": 1, "hot": 2}
    assert board.spend_usd == Decimal("2.00")
    assert board.budget_for_period_usd == Decimal("7.00")
    assert board.budget_share == pytest.approx(2 / 7)
    assert board.latency_samples == 4
    assert board.latency_p50_s == pytest.approx(5.0)  # of 2, 4, 6, 10 s
    assert board.latency_p95_s == pytest.approx(9.4)
    assert len(board.messages_per_day) == 8  # the days the last 7 × 24 hours touch
    assert sum(count for _, count in board.messages_per_day) == 4
    assert sum(spend for _, spend in board.spend_per_day) == Decimal("2.00")


def test_a_custom_period_takes_whole_days_and_bad_ones_are_refused(activity):
    period = dashboard_period(project=activity, name="custom", start=date(2026, 2, 17), end=date(2026, 2, 18))
    board = project_dashboard(project=activity, period=period)
    assert (board.messages, board.spend_usd, board.leads) == (1, Decimal("5.00"), 1)
    with pytest.raises(PeriodInvalid, match="before the start"):
        dashboard_period(project=activity, name="custom", start=date(2026, 2, 18), end=date(2026, 2, 17))
    with pytest.raises(PeriodInvalid, match="unknown period"):
        dashboard_period(project=activity, name="year")


def test_matches_are_counted_by_status(project_a):
    chats = [Chat.objects.create(project=project_a, telegram_chat_id=n) for n in range(3)]
    profiles = [Profile.objects.create(project=project_a, chat=chat, role="seeker") for chat in chats]
    Match.objects.create(project=project_a, user_a=profiles[0], user_b=profiles[1], round=1, status="connected")
    Match.objects.create(project=project_a, user_a=profiles[2], user_b=profiles[1], round=1, status="rejected")
    Match.objects.create(project=project_a, user_a=profiles[1], round=1, status="unmatched")
    board = project_dashboard(project=project_a, period=dashboard_period(project=project_a, name="day"))
    assert board.matches_by_status == {"Connected": 1, "Rejected": 1}


def test_the_dashboard_page_draws_its_charts_in_the_page(client, activity, project_b):
    client.force_login(MembershipFactory(project=activity, role=Membership.Role.VIEWER).user)
    url = reverse("admin:tenants_project_dashboard", args=[activity.pk])

    page = client.get(url, {"period": "custom", "start": "2026-03-07", "end": "2026-03-10"}).content.decode()

    assert page.count('<svg class="chart"') == 5  # messages, spend, budget meter, leads, latency
    assert 'aria-label="Messages per day"' in page
    assert 'aria-label="LLM spend per day (USD)"' in page
    assert 'aria-label="Leads by client status"' in page
    assert "daily budget $1.00" in page
    assert 'id="fig-spend">$2.00<' in page
    dashboard = page.split('id="dashboard"')[1].split('id="dashboard-end"')[0]
    assert "<script" not in dashboard  # the charts need no script, and no CDN
    bad = client.get(url, {"period": "custom", "start": "2026-03-10", "end": "2026-03-01"}).content.decode()
    assert "Showing the last week instead: the end date is before the start date" in bad
