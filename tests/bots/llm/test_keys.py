"""API key pools rotate round-robin; an empty pool is a clear permanent error."""

import json
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from bots.llm import local_server
from bots.llm.chain import call_tools
from bots.llm.keys import MissingApiKeys, next_api_key
from bots.llm.readiness import llm_readiness
from bots.llm.slots import parse_chain, resolve_chain
from bots.llm.types import AllBackendsFailed, LLMMessage, ToolCallRequest
from bots.models import LLMCall
from tests.fakes.llm_api import text

pytestmark = pytest.mark.django_db

REQUEST = ToolCallRequest(system_prefix="p", system_suffix="s", messages=(LLMMessage.user_text("hi"),))


def test_keys_rotate_across_calls(fake_llm, settings, context_a, context_b):
    settings.OPENAI_API_KEYS = ["sk-rotation-key-one", "sk-rotation-key-two"]
    for context in (context_a, context_b, context_a, context_b):
        call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context)

    keys = [r.api_key for r in fake_llm.requests_to("openai")]
    assert set(keys) == {"sk-rotation-key-one", "sk-rotation-key-two"}
    assert keys[0] != keys[1]
    assert keys[:2] == keys[2:]


def test_rotation_is_even_under_threads(settings):
    settings.OPENAI_API_KEYS = "k1,k2,k3"
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(100):
            key = next_api_key(protocol="openai")
            with lock:
                seen.append(key)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {key: seen.count(key) for key in set(seen)} == {"k1": 200, "k2": 200, "k3": 200}


def test_empty_pool_names_the_env_var_and_the_chain_moves_on(fake_llm, settings, context_a, sleeps):
    settings.ANTHROPIC_API_KEYS = []
    with pytest.raises(MissingApiKeys, match="ANTHROPIC_API_KEYS"):
        next_api_key(protocol="anthropic")

    response = call_tools(
        request=REQUEST, chain=parse_chain("anthropic/claude-test,openai/gpt-test"), context=context_a
    )

    assert response.model == "openai/gpt-test"
    assert fake_llm.requests_to("anthropic") == []
    assert sleeps == []
    error_row, ok_row = LLMCall.objects.order_by("pk")
    assert (error_row.model, error_row.status, error_row.attempt) == ("anthropic/claude-test", "error", 1)
    assert "ANTHROPIC_API_KEYS is empty" in error_row.error
    assert ok_row.status == "ok"


def test_empty_pools_everywhere_fail_clearly(settings, context_a):
    settings.OPENAI_API_KEYS = []
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"  # a remote provider: a key is a must

    with pytest.raises(AllBackendsFailed, match="OPENAI_API_KEYS is empty"):
        call_tools(request=REQUEST, chain=parse_chain("openai/gpt-test"), context=context_a)


def test_a_local_openai_compatible_server_needs_no_key(settings, fake_llm, context_a):
    settings.OPENAI_API_KEYS = []  # OPENAI_BASE_URL is the fake on 127.0.0.1, like Ollama, llama.cpp or vLLM
    fake_llm.openai.push(text("hi from the local model"))

    response = call_tools(request=REQUEST, chain=parse_chain("ollama/llama3.2"), context=context_a)

    assert response.text == "hi from the local model"
    [request] = fake_llm.requests_to("openai")
    assert request.body["model"] == "llama3.2"


def test_a_local_ollama_is_found_by_itself_when_nothing_is_configured(settings, monkeypatch, project_a):
    """A real HTTP server answering Ollama's OpenAI-compatible model list, on a free port."""
    models = Response(json.dumps({"object": "list", "data": [{"id": "llama3.2"}, {"id": "qwen2.5"}]}),
                      content_type="application/json")  # fmt: skip
    server = make_server("127.0.0.1", 0, lambda environ, start: models(environ, start), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(local_server, "_probed", {})
    settings.OPENAI_API_KEYS = []
    settings.OPENAI_BASE_URL = settings.OPENAI_DEFAULT_BASE_URL
    settings.LLM_MODEL_TOOLCALLER = settings.LLM_MODEL_EXTRACT = settings.LLM_MODEL_SUMMARY = "openai/gpt-4.1-mini"
    settings.OLLAMA_DEFAULT_URL = f"http://127.0.0.1:{server.port}/v1"
    try:
        assert local_server.openai_base_url() == settings.OLLAMA_DEFAULT_URL
        assert [ref.id for ref in resolve_chain(project=project_a, slot="toolcaller")] == ["ollama/llama3.2"]
        assert llm_readiness(project=project_a).ready
        settings.OPENAI_API_KEYS = ["sk-real"]  # a key means the operator chose a provider: no detection
        assert local_server.openai_base_url() == settings.OPENAI_DEFAULT_BASE_URL
    finally:
        server.shutdown()
