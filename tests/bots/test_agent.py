"""The tool loop, run in-process through the same services the worker uses."""

import json
from dataclasses import replace

import pytest

from bots import kinds
from bots.agent import MAX_ROUND_TRIPS
from bots.chat_processing import chat_process
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.models import Chat, Turn
from bots.toolsets import ClockTools
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clock_toolset(monkeypatch):
    """The engine is proven with its own small toolset, whatever kind the test project is."""
    monkeypatch.setitem(kinds._kinds, "sales", replace(kinds._kinds["sales"], toolset=lambda project: ClockTools()))


@pytest.fixture
def alpha(fake_telegram, project_a):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    project_a.timezone = "Europe/Berlin"
    project_a.save()
    return project_a


def say(project, chat_id: int, text: str) -> Chat:
    result = update_receive(project=project, payload=text_update(chat_id, text))
    chat = Chat.objects.get(pk=result.chat_id)
    chat_process(chat_id=chat.pk)
    generations_process_due(chat=chat)
    return chat


def test_tool_call_result_goes_back_to_the_model_and_the_final_text_is_sent(alpha, fake_llm, fake_telegram):
    fake_llm.openai.push(llm_api.tool_call("current_time", {}), llm_api.text("It is morning in Berlin."))
    chat = say(alpha, 10, "What time is it there?")

    [sent] = fake_telegram.calls_to("sendMessage", token=alpha.bot_token)
    assert sent.params["text"] == "It is morning in Berlin."
    first, second = (r.body for r in fake_llm.requests_to("openai"))
    assert [tool["function"]["name"] for tool in first["tools"]] == ["current_time"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "(Europe/Berlin)" in tool_message["content"]
    turn = Turn.objects.get(chat=chat)
    assert [m["role"] for m in turn.blocks] == ["assistant", "user", "assistant"]


def test_earlier_tool_blocks_are_replayed_on_the_next_turn(alpha, fake_llm):
    fake_llm.openai.push(llm_api.tool_call("current_time", {}, call_id="call_clock"), llm_api.text("Noon."))
    say(alpha, 10, "Time?")
    fake_llm.reset()
    fake_llm.openai.push(llm_api.text("You asked about the time."))
    say(alpha, 10, "What did I ask?")

    messages = fake_llm.requests_to("openai")[0].body["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert messages[2]["tool_calls"][0]["id"] == "call_clock"
    assert messages[3]["tool_call_id"] == "call_clock"
    assert messages[-1]["content"] == "What did I ask?"


def test_the_loop_stops_after_eight_round_trips_with_the_safe_reply(alpha, fake_llm, fake_telegram, caplog):
    fake_llm.openai.responder = lambda request: llm_api.tool_call("current_time", {})
    chat = say(alpha, 10, "Loop forever")

    assert len(fake_llm.requests_to("openai")) == MAX_ROUND_TRIPS
    [sent] = fake_telegram.calls_to("sendMessage", token=alpha.bot_token)
    assert "Could you say that again" in sent.params["text"]
    assert "tool loop overflow" in caplog.text
    turn = Turn.objects.get(chat=chat)
    assert turn.status == "sent"
    assert turn.blocks[-1]["blocks"][0]["text"] == sent.params["text"]


def test_unknown_tools_and_broken_arguments_become_error_results_not_crashes(alpha, fake_llm, fake_telegram):
    broken_arguments = {
        "id": "chatcmpl-broken", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                     "tool_calls": [{"id": "call_bad", "type": "function",
                                     "function": {"name": "current_time", "arguments": "{not json"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }  # fmt: skip
    fake_llm.openai.push(
        llm_api.tool_calls([("drop_database", {"please": True}), ("current_time", {})]),
        llm_api.malformed(broken_arguments),
        llm_api.text("Recovered."),
    )
    say(alpha, 10, "Do something odd")

    requests = fake_llm.requests_to("openai")
    results = [m for m in requests[1].body["messages"] if m["role"] == "tool"]
    assert "unknown tool 'drop_database'" in results[0]["content"]
    assert "Europe/Berlin" in results[1]["content"]
    last_result = requests[2].body["messages"][-1]
    assert last_result["tool_call_id"] == "call_bad"
    assert "not valid JSON" in last_result["content"]
    assert fake_telegram.calls_to("sendMessage")[0].params["text"] == "Recovered."


def test_the_model_never_sees_another_tenants_conversation(alpha, project_b, fake_telegram, fake_llm):
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    fake_llm.openai.push(llm_api.text("Alpha secret: the code is 1234"))
    say(alpha, 10, "Remember the code 1234")
    fake_llm.openai.push(llm_api.text("Beta reply"))
    say(project_b, 10, "What code did the other customer give?")

    beta_request = json.dumps(fake_llm.requests_to("openai")[1].body)
    assert "1234" not in beta_request
    assert "Alpha" not in beta_request
