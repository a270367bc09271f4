"""LLM-layer fixtures: the platform pointed at the fake provider server, and instant, recorded backoff."""

import pytest

from bots.llm import chain
from bots.llm.types import CallContext

OPENAI_KEYS = ["sk-test-openai-key-one", "sk-test-openai-key-two"]
ANTHROPIC_KEYS = ["sk-ant-test-key-one"]


@pytest.fixture(autouse=True)
def llm_settings(settings, fake_llm):
    settings.OPENAI_BASE_URL = f"{fake_llm.base_url}/v1"
    settings.OPENAI_API_KEYS = list(OPENAI_KEYS)
    settings.ANTHROPIC_BASE_URL = fake_llm.base_url
    settings.ANTHROPIC_API_KEYS = list(ANTHROPIC_KEYS)
    settings.LLM_MODEL_TOOLCALLER = "openai/gpt-test"
    settings.LLM_MODEL_EXTRACT = "openai/gpt-test"
    settings.LLM_MODEL_SUMMARY = "openai/gpt-test"
    settings.LLM_REQUEST_TIMEOUT_SECONDS = 10.0
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_DIM = 512
    return settings


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """Backoff waits become no-ops; the list holds the delays the chain asked for."""
    delays: list[float] = []
    monkeypatch.setattr(chain, "sleep", delays.append)
    return delays


@pytest.fixture
def context_a(project_a) -> CallContext:
    return CallContext(purpose="chat_turn", project_id=project_a.pk)


@pytest.fixture
def context_b(project_b) -> CallContext:
    return CallContext(purpose="extraction", project_id=project_b.pk)
