"""Model ids, chains and per-project slot overrides."""

import pytest

from bots.llm.slots import InvalidModelId, ModelRef, parse_chain, parse_model_id, resolve_chain
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_model_id_splits_on_the_first_slash():
    ref = parse_model_id("openrouter/z-ai/glm-5.1")

    assert (ref.provider, ref.model, ref.id, ref.protocol) == (
        "openrouter",
        "z-ai/glm-5.1",
        "openrouter/z-ai/glm-5.1",
        "openai",
    )
    assert parse_model_id(" anthropic/claude-sonnet-4-6 ").protocol == "anthropic"
    assert {parse_model_id(f"{p}/m").protocol for p in ("openai", "deepseek", "ollama", "vllm")} == {"openai"}


@pytest.mark.parametrize("bad", ["gpt-4.1-mini", "openai/", "/gpt", ""])
def test_malformed_model_id_is_a_clear_error(bad):
    with pytest.raises(InvalidModelId, match="provider/model"):
        parse_model_id(bad)


def test_chain_is_primary_then_fallbacks_in_order():
    assert parse_chain("anthropic/claude-sonnet-4-6, openai/gpt-4.1-mini,") == [
        ModelRef("anthropic", "claude-sonnet-4-6"),
        ModelRef("openai", "gpt-4.1-mini"),
    ]
    with pytest.raises(InvalidModelId):
        parse_chain(" , ")


def test_project_override_wins_and_blank_means_the_default(project_a, project_b, settings):
    settings.LLM_MODEL_TOOLCALLER = "openai/gpt-4.1-mini"
    settings.LLM_MODEL_SUMMARY = "deepseek/deepseek-chat"
    project_a.model_toolcaller = "anthropic/claude-sonnet-4-6,openrouter/z-ai/glm-5.1"
    project_a.save()

    assert [r.id for r in resolve_chain(project=project_a, slot="toolcaller")] == [
        "anthropic/claude-sonnet-4-6",
        "openrouter/z-ai/glm-5.1",
    ]
    assert resolve_chain(project=project_b, slot="toolcaller") == [ModelRef("openai", "gpt-4.1-mini")]
    assert resolve_chain(project=project_a, slot="summary") == [ModelRef("deepseek", "deepseek-chat")]
    assert resolve_chain(project=None, slot="extract") == [ModelRef("openai", "gpt-test")]
    with pytest.raises(ValueError, match="unknown model slot"):
        resolve_chain(project=project_a, slot="poetry")


def test_the_transcription_slot_is_optional_and_a_project_may_set_its_own(settings):
    settings.TRANSCRIPTION_MODEL = ""
    project = ProjectFactory.build(model_transcription="")
    assert resolve_chain(project=project, slot="transcription") == []  # unset: voice messages stay files
    settings.TRANSCRIPTION_MODEL = "openai/whisper-1"
    assert [ref.id for ref in resolve_chain(project=project, slot="transcription")] == ["openai/whisper-1"]
    project.model_transcription = "groq/whisper-large-v3,openai/gpt-4o-mini-transcribe"
    chain = resolve_chain(project=project, slot="transcription")
    assert [ref.id for ref in chain] == ["groq/whisper-large-v3", "openai/gpt-4o-mini-transcribe"]
