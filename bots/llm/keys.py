"""API key pools: round-robin over a comma-separated env list, one rotation per pool, process-wide.

Rotation spreads rate limits across keys; it is per pool (one env var), so every OpenAI-compatible
provider shares the OPENAI_API_KEYS rotation.
"""

import threading
from collections import defaultdict

from django.conf import settings

from bots.llm.local_server import PLACEHOLDER_KEY, local_server_in_use
from bots.llm.slots import Protocol
from bots.llm.types import LLMError

POOL_SETTINGS: dict[Protocol, str] = {"openai": "OPENAI_API_KEYS", "anthropic": "ANTHROPIC_API_KEYS"}

_lock = threading.Lock()
_turns: defaultdict[str, int] = defaultdict(int)


class MissingApiKeys(LLMError):
    """The key pool for a backend is empty: a permanent configuration error."""


def pool_keys(*, protocol: Protocol) -> list[str]:
    # Read settings on every call (not at import) so that tests and reconfiguration take effect.
    raw = getattr(settings, POOL_SETTINGS[protocol], None) or []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return [key.strip() for key in items if key and key.strip()]


def next_api_key(*, protocol: Protocol) -> str:
    setting = POOL_SETTINGS[protocol]
    keys = pool_keys(protocol=protocol)
    if not keys and protocol == "openai" and local_server_in_use():
        return PLACEHOLDER_KEY  # Ollama, llama.cpp and vLLM take no key; the client insists on one
    if not keys:
        raise MissingApiKeys(f"{setting} is empty: set it to a comma-separated list of API keys")
    with _lock:
        turn = _turns[setting]
        _turns[setting] = turn + 1
    return keys[turn % len(keys)]
