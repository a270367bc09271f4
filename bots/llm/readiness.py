"""Can a project's bot answer at all? What is missing, said plainly, with the fix (console banner, `chat`)."""

from dataclasses import dataclass

from bots.llm.keys import POOL_SETTINGS, pool_keys
from bots.llm.local_server import local_server_in_use, openai_base_url
from bots.llm.slots import InvalidModelId, ModelRef, resolve_chain
from tenants.models import Project

LOCAL_SERVER_FIX = (
    "For a first run without a paid key, start a local OpenAI-compatible server (Ollama: `ollama serve` and "
    "`ollama pull llama3.2`; it is found on 127.0.0.1:11434 by itself), or point OPENAI_BASE_URL at llama.cpp "
    "or vLLM and set LLM_MODEL_TOOLCALLER to its model (e.g. vllm/Qwen2.5-7B-Instruct). Then restart."
)


@dataclass(frozen=True)
class LLMReadiness:
    chain: list[ModelRef]
    problem: str = ""  # empty when some backend of the chain can be called
    fix: str = ""

    @property
    def ready(self) -> bool:
        return not self.problem


def _usable(ref: ModelRef) -> bool:
    if pool_keys(protocol=ref.protocol):
        return True
    return ref.protocol == "openai" and local_server_in_use()


def llm_readiness(*, project: Project) -> LLMReadiness:
    """Whether the project's tool-calling chain has a backend it can call (keys, or a local server)."""
    try:
        chain = resolve_chain(project=project, slot="toolcaller")
    except InvalidModelId as exc:
        return LLMReadiness(chain=[], problem=f"The model setting is invalid: {exc}.",
                            fix="Fix the project's Models settings below, or LLM_MODEL_TOOLCALLER.")  # fmt: skip
    if any(_usable(ref) for ref in chain):
        return LLMReadiness(chain=chain)
    names = ", ".join(ref.id for ref in chain)
    needed = sorted({POOL_SETTINGS[ref.protocol] for ref in chain})
    return LLMReadiness(
        chain=chain,
        problem=f"No LLM is configured: {names} needs {' or '.join(needed)}, and no local model server answers "
        f"at {openai_base_url()}. Every message gets an apology instead of an answer.",
        fix=f"Set {' or '.join(needed)} in .env (comma-separated keys) and restart. {LOCAL_SERVER_FIX}",
    )
