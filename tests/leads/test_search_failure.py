"""A knowledge search that fails is an error the operator sees, never a silent answer without knowledge."""

import logging

import pytest
from prometheus_client import REGISTRY

from bots.chat_processing import chat_process
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.models import Chat, Turn, TurnTrace
from leads import sales_agent
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db


def failures(project_slug: str) -> float:
    value = REGISTRY.get_sample_value(
        "switchboard_tool_failures_total", {"project": project_slug, "tool": "hybrid_search"}
    )
    return value or 0.0


def test_a_failed_search_is_logged_counted_and_marked_on_the_turn(
    project_a, project_b, fake_telegram, fake_llm, monkeypatch, caplog
):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")

    def store_down(**kwargs: object) -> list:
        raise RuntimeError("the vector store is not reachable")

    monkeypatch.setattr(sales_agent, "knowledge_search", store_down)
    fake_llm.openai.push(
        llm_api.tool_call("hybrid_search", {"query": "window cleaning price"}), llm_api.text("Let me check.")
    )
    before_a, before_b = failures(project_a.slug), failures(project_b.slug)
    update_receive(project=project_a, payload=text_update(4242, "How much is window cleaning?"))
    chat = Chat.objects.get(project=project_a, telegram_chat_id=4242)
    with caplog.at_level(logging.ERROR, logger="bots.agent"):
        chat_process(chat_id=chat.pk)
        generations_process_due(chat=chat)

    turn = Turn.objects.get(chat=chat, trigger=Turn.Trigger.USER)
    assert turn.status == Turn.Status.SENT
    assert "tool failed: hybrid_search: RuntimeError: the vector store is not reachable" in turn.error
    step = next(s for s in TurnTrace.objects.get(turn=turn).steps if s["kind"] == "tool")
    assert step["is_error"] is True
    record = next(r for r in caplog.records if "hybrid_search failed" in r.getMessage())
    assert (record.project_id, record.chat_id) == (project_a.pk, 4242)
    assert failures(project_a.slug) == before_a + 1
    assert failures(project_b.slug) == before_b  # the other tenant's counter did not move
