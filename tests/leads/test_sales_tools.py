"""The sales tools and timers as services, in-process."""

from datetime import UTC, datetime, time

import pytest

from bots.models import Chat, Turn
from bots.toolsets import ToolContext, ToolError
from leads.followups import in_quiet_hours
from leads.models import Lead
from leads.sales_agent import SalesTools
from leads.services import lead_finish, notes_fields

pytestmark = pytest.mark.django_db


@pytest.fixture
def context(project_a):
    chat = Chat.objects.create(project=project_a, telegram_chat_id=5)
    turn = Turn.objects.create(project=project_a, chat=chat)
    return ToolContext(project=project_a, chat=chat, turn=turn)


def test_notes_fields_follow_the_scratchpad_conventions_in_both_languages():
    assert notes_fields("name: Anna\ncontact: +1 555\nservice: windows\ncity: Berlin") == {
        "name": "Anna", "contact": "+1 555", "service": "windows", "city": "Berlin",
    }  # fmt: skip
    assert notes_fields("Имя: Виктор\nтелефон: +79130001234\nуслуга: оценка квартиры\nгород: Барнаул") == {
        "name": "Виктор", "contact": "+79130001234", "service": "оценка квартиры", "city": "Барнаул",
    }  # fmt: skip


def test_set_state_takes_flat_strings_rewrites_notes_whole_and_checks_status(context):
    tools = SalesTools(context.project)
    tools.execute("set_state", {"notes": "name: Anna", "client_status": "HOT"}, context)
    tools.execute("set_state", {"notes": "contact: +1 555"}, context)
    chat = Chat.objects.get(pk=context.chat.pk)
    assert chat.state["notes"] == "contact: +1 555"
    assert chat.state["client_status"] == "hot"
    with pytest.raises(ToolError, match="client_status"):
        tools.execute("set_state", {"client_status": "lukewarm"}, context)
    with pytest.raises(ToolError, match="plain string"):
        tools.execute("set_state", {"notes": {"name": "nested"}}, context)
    assert '"client_status": "hot"' in tools.execute("get_state", {}, context)


def test_send_lead_twice_creates_one_lead(context, django_capture_on_commit_callbacks):
    tools = SalesTools(context.project)
    with django_capture_on_commit_callbacks():
        first = tools.execute("send_lead", {"summary": "Wants windows"}, context)
        second = tools.execute("send_lead", {"summary": "Wants windows again"}, context)
        _lead, created = lead_finish(chat=context.chat, summary="timer racing the agent", source="timer")
    assert "handed to the managers" in first
    assert "already sent" in second
    assert not created
    assert Lead.objects.count() == 1


def test_the_contact_button_is_offered_once(context):
    tools = SalesTools(context.project)
    markup = tools.reply_markup(context, "What is your phone number?")
    assert markup["keyboard"][0][0]["request_contact"] is True
    assert tools.reply_markup(context, "And your phone number again?") is None
    assert tools.reply_markup(context, "We clean windows.") is None


def test_finished_conversations_are_acknowledged_without_the_model(context):
    tools = SalesTools(context.project)
    assert tools.reply_without_model(context) is None
    context.chat.state["lead_id"] = Lead.objects.create(project=context.project, chat=context.chat, summary="x").pk
    assert "manager" in tools.reply_without_model(context)


def test_quiet_hours_span_midnight_in_the_projects_time_zone(project_a):
    project_a.timezone = "Europe/Berlin"
    project_a.quiet_hours_start, project_a.quiet_hours_end = time(22), time(8)
    night = datetime(2026, 1, 10, 23, 30, tzinfo=UTC)  # 00:30 in Berlin
    wake = in_quiet_hours(project_a, night)
    assert wake.hour == 8
    assert wake.date().day == 11
    assert in_quiet_hours(project_a, datetime(2026, 1, 10, 12, 0, tzinfo=UTC)) is None
