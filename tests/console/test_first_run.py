"""A first run: the demo bot answers from its bundled knowledge base through a local server, with no API key."""

from io import StringIO

import pytest
from django.core.management import call_command

from bots.llm.local_server import PLACEHOLDER_KEY
from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from tenants.models import Project
from tests.fakes import llm_api

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def typed(monkeypatch, *lines: str) -> None:
    """What the operator types into `manage.py chat`, then Ctrl-D."""
    pending = list(lines)

    def next_line(prompt: str = "") -> str:
        if not pending:
            raise EOFError
        return pending.pop(0)

    monkeypatch.setattr("builtins.input", next_line)


def test_the_demo_bot_answers_from_its_knowledge_base_through_a_local_server_without_a_key(
    fake_llm, settings, monkeypatch
):
    settings.OPENAI_API_KEYS = []  # a fresh clone; OPENAI_BASE_URL is the local fake, as Ollama would be
    settings.LLM_MODEL_TOOLCALLER = "ollama/llama3.2"
    call_command("demo", stdout=StringIO())
    sales = Project.objects.get(slug="demo-sales")
    assert crawl_job_run(job=sales.crawl_jobs.get()).status == "done"  # what the worker does after `bin/run`

    def local_model(request: llm_api.LLMRequest) -> llm_api.Reply:
        results = [m["content"] for m in request.body["messages"] if m["role"] == "tool"]
        if not results:
            return llm_api.tool_call("hybrid_search", {"query": "window cleaning price per window"})
        return llm_api.text(f"From our price list: {results[-1][:400]}")

    fake_llm.openai.responder = local_model
    typed(monkeypatch, "How much is window cleaning?")
    output = StringIO()
    call_command("chat", "demo-sales", stdout=output)

    printed = output.getvalue()
    assert "Model: ollama/llama3.2 at http://127.0.0.1:" in printed
    reply = printed.split("bot> ", 1)[1]
    assert "per window" in reply  # the demo site's own words, found by hybrid search
    requests = fake_llm.requests_to("openai")
    assert [r.body["model"] for r in requests] == ["llama3.2", "llama3.2"]
    assert {r.api_key for r in requests} == {PLACEHOLDER_KEY}  # no key was needed


def test_chat_says_plainly_what_is_missing_when_nothing_is_configured(settings, monkeypatch):
    settings.OPENAI_API_KEYS = []
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.LLM_DETECT_LOCAL_OLLAMA = False
    call_command("demo", stdout=StringIO())
    typed(monkeypatch)
    output = StringIO()
    call_command("chat", "demo-sales", stdout=output)
    assert "No LLM is configured: openai/gpt-4.1-mini needs OPENAI_API_KEYS" in output.getvalue()
    assert "ollama serve" in output.getvalue()
