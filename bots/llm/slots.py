"""Model slots: which `provider/model` chain serves a project's tool-caller, extraction or summaries.

A model id is `provider/model`, split on the FIRST `/` (`openrouter/z-ai/glm-5.1` is provider
`openrouter`, model `z-ai/glm-5.1`). A slot value may be a comma-separated chain: the first model is
primary, the rest are fallbacks in order. Provider `anthropic` speaks the Anthropic Messages API; every
other provider name (openai, openrouter, deepseek, ollama, vllm, ...) is OpenAI-compatible at
OPENAI_BASE_URL, and the wire model is the part after the first `/`.
"""

from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from bots.llm.local_server import detected_default_model
from bots.llm.types import LLMError
from tenants.models import Project

Slot = Literal["toolcaller", "extract", "summary", "transcription"]
Protocol = Literal["openai", "anthropic"]

SLOT_SETTINGS: dict[str, str] = {
    "toolcaller": "LLM_MODEL_TOOLCALLER",
    "extract": "LLM_MODEL_EXTRACT",
    "summary": "LLM_MODEL_SUMMARY",
    "transcription": "TRANSCRIPTION_MODEL",
}
# Slots that may be left unset: the capability is off (no local server stands in for them).
OPTIONAL_SLOTS = frozenset({"transcription"})


class InvalidModelId(LLMError):
    """A model id or chain that is not `provider/model[,provider/model...]`: a configuration error."""


@dataclass(frozen=True)
class ModelRef:
    provider: str
    model: str  # as sent on the wire

    @property
    def id(self) -> str:
        """The full `provider/model` id: what prices and call records are keyed by."""
        return f"{self.provider}/{self.model}"

    @property
    def protocol(self) -> Protocol:
        return "anthropic" if self.provider == "anthropic" else "openai"

    def __str__(self) -> str:
        return self.id


def parse_model_id(model_id: str) -> ModelRef:
    provider, sep, model = model_id.strip().partition("/")
    provider, model = provider.strip().lower(), model.strip()
    if not sep or not provider or not model:
        raise InvalidModelId(f"model id {model_id!r} is not of the form provider/model (e.g. openai/gpt-4.1-mini)")
    return ModelRef(provider=provider, model=model)


def parse_chain(value: str) -> list[ModelRef]:
    refs = [parse_model_id(part) for part in value.split(",") if part.strip()]
    if not refs:
        raise InvalidModelId("empty model chain: expected provider/model[,provider/model...]")
    return refs


def resolve_chain(*, project: Project | None, slot: Slot) -> list[ModelRef]:
    """The project's override for the slot when non-blank, else the settings default.

    An optional slot (transcription) left blank in both resolves to an empty chain: the capability is off.
    """
    if slot not in SLOT_SETTINGS:
        raise ValueError(f"unknown model slot {slot!r}; expected one of {sorted(SLOT_SETTINGS)}")
    override = getattr(project, f"model_{slot}", "") if project is not None else ""
    if override and override.strip():
        return parse_chain(override)
    if slot in OPTIONAL_SLOTS:
        default = getattr(settings, SLOT_SETTINGS[slot], "") or ""
        return parse_chain(default) if default.strip() else []
    if (local := detected_default_model()) is not None:
        return parse_chain(local)
    return parse_chain(getattr(settings, SLOT_SETTINGS[slot]))
