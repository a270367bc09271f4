"""Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM): no API key, and a local Ollama found by itself.

`OPENAI_BASE_URL` pointing at this machine needs no key (the server ignores it; the client wants one, so a
placeholder goes). With no key and no `OPENAI_BASE_URL` set, an Ollama answering on its default port is
used, with its first installed model unless the model slots name one. Detection is lazy (never at import)
and cached per process.
"""

import logging
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "host.docker.internal"}
PLACEHOLDER_KEY = "local-server-needs-no-key"
PROBE_TIMEOUT_SECONDS = 0.5

_lock = threading.Lock()
_probed: dict[str, "LocalServer | None"] = {}


@dataclass(frozen=True)
class LocalServer:
    base_url: str  # the OpenAI-compatible root, ending in /v1
    models: tuple[str, ...]  # what the server says it has, as wire names


def is_local_url(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


def _probe(base_url: str) -> LocalServer | None:
    try:
        response = httpx.get(f"{base_url}/models", timeout=PROBE_TIMEOUT_SECONDS)
        response.raise_for_status()
        models = tuple(item["id"] for item in response.json().get("data", []) if item.get("id"))
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return LocalServer(base_url=base_url, models=models)


def detected_ollama() -> LocalServer | None:
    """A local Ollama on its default port, when nothing else is configured (probed once per process)."""
    configured = settings.OPENAI_BASE_URL.rstrip("/") != settings.OPENAI_DEFAULT_BASE_URL
    if not settings.LLM_DETECT_LOCAL_OLLAMA or settings.OPENAI_API_KEYS or configured:
        return None
    url = settings.OLLAMA_DEFAULT_URL.rstrip("/")
    with _lock:
        if url not in _probed:
            _probed[url] = _probe(url)
            if _probed[url] is not None:
                logger.info("using the local Ollama at %s (no OPENAI_API_KEYS set)", url)
        return _probed[url]


def openai_base_url() -> str:
    """Where OpenAI-compatible calls go: OPENAI_BASE_URL, or a detected local Ollama."""
    ollama = detected_ollama()
    return ollama.base_url if ollama is not None else settings.OPENAI_BASE_URL


def local_server_in_use() -> bool:
    return is_local_url(openai_base_url())


def detected_default_model() -> str | None:
    """`ollama/<model>` for a detected Ollama when the model slots were left at their defaults."""
    ollama = detected_ollama()
    slots = (settings.LLM_MODEL_TOOLCALLER, settings.LLM_MODEL_EXTRACT, settings.LLM_MODEL_SUMMARY)
    if ollama is None or not ollama.models or any(slot != settings.DEFAULT_LLM_MODEL for slot in slots):
        return None
    return f"ollama/{ollama.models[0]}"
