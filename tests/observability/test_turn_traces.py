"""Per-turn trace records: each model call and tool call of a turn, stored and shown in the admin."""

from dataclasses import replace

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from bots import kinds
from bots.chat_processing import chat_process
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.models import Chat, TurnTrace
from bots.toolsets import ClockTools
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clock_toolset(monkeypatch):
    monkeypatch.setitem(kinds._kinds, "sales", replace(kinds._kinds["sales"], toolset=lambda project: ClockTools()))


def say(project, chat_id: int, text: str) -> Chat:
    chat = Chat.objects.get(pk=update_receive(project=project, payload=text_update(chat_id, text)).chat_id)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    for project in (project_a, project_b):
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    return project_a, project_b


def test_a_turn_leaves_a_trace_of_its_model_and_tool_calls(bots, fake_llm):
    alpha, _ = bots
    fake_llm.openai.push(llm_api.tool_call("current_time", {"city": "Berlin"}), llm_api.text("It is noon."))
    chat = say(alpha, 10, "What time is it?")

    trace = TurnTrace.objects.get(turn__chat=chat)
    assert (trace.project, trace.purpose, trace.round_trips) == (alpha, "chat_turn", 2)
    assert trace.tools_called == ["current_time"]
    model_call, tool_call, final = trace.steps
    assert model_call["kind"] == "model"
    assert model_call["tool_calls"] == [{"name": "current_time", "input": {"city": "Berlin"}}]
    assert (tool_call["kind"], tool_call["name"], tool_call["is_error"]) == ("tool", "current_time", False)
    assert "UTC" in tool_call["result"] or ":" in tool_call["result"]
    assert (final["kind"], final["text"]) == ("model", "It is noon.")
    assert trace.duration_ms >= sum(step["ms"] for step in trace.steps)
    assert trace.turn.generation_id == trace.generation_id is not None


def test_traces_can_be_switched_off(bots, fake_llm, settings):
    settings.TURN_TRACES = False
    alpha, _ = bots
    fake_llm.openai.push(llm_api.text("Hello."))
    say(alpha, 10, "Hi")
    assert not TurnTrace.objects.exists()


def test_the_admin_shows_a_trace_only_to_operators_of_its_project(bots, fake_llm, client, admin_client):
    alpha, beta = bots
    fake_llm.openai.push(llm_api.tool_call("current_time", {}), llm_api.text("Noon in Alpha."))
    say(alpha, 10, "Time?")
    fake_llm.openai.push(llm_api.text("Полдень в Бете."))
    say(beta, 20, "Который час?")
    alpha_trace, beta_trace = TurnTrace.objects.get(project=alpha), TurnTrace.objects.get(project=beta)

    page = admin_client.get(reverse("admin:bots_turntrace_change", args=[alpha_trace.pk])).content.decode()
    assert "tool current_time" in page
    assert "Noon in Alpha." in page

    operator = MembershipFactory(project=beta).user
    operator.user_permissions.add(Permission.objects.get(codename="view_turntrace"))
    client.force_login(operator)
    listing = client.get(reverse("admin:bots_turntrace_changelist")).content.decode()
    assert f"/{beta_trace.pk}/change/" in listing
    assert f"/{alpha_trace.pk}/change/" not in listing
    assert client.get(reverse("admin:bots_turntrace_change", args=[alpha_trace.pk])).status_code in (302, 404)
