"""The maintained price table: USD per million tokens for the common models of the supported providers.

Plain data (no model imports) so that data migrations can load it too. Loaded into `ModelPrice` by the
migrations and by `model_prices_ensure` (new rows only: prices an operator edited are never overwritten).
Checked against the providers' public price pages on PRICES_CHECKED; update the rows and the date together.
A `provider/*` row prices every model of that provider (local servers cost nothing per token).
"""

PRICES_CHECKED = "2025-11-20"

# model id, input, cached input, output (USD per million tokens)
PRICE_TABLE: list[tuple[str, str, str, str]] = [
    # OpenAI
    ("openai/gpt-5", "1.25", "0.125", "10.00"),
    ("openai/gpt-5-mini", "0.25", "0.025", "2.00"),
    ("openai/gpt-5-nano", "0.05", "0.005", "0.40"),
    ("openai/gpt-4.1", "2.00", "0.50", "8.00"),
    ("openai/gpt-4.1-mini", "0.40", "0.10", "1.60"),
    ("openai/gpt-4.1-nano", "0.10", "0.025", "0.40"),
    ("openai/gpt-4o", "2.50", "1.25", "10.00"),
    ("openai/gpt-4o-mini", "0.15", "0.075", "0.60"),
    ("openai/o3", "2.00", "0.50", "8.00"),
    ("openai/o4-mini", "1.10", "0.275", "4.40"),
    ("openai/text-embedding-3-small", "0.02", "0", "0"),
    ("openai/text-embedding-3-large", "0.13", "0", "0"),
    # Anthropic (cached input: cache reads)
    ("anthropic/claude-opus-4-5", "5.00", "0.50", "25.00"),
    ("anthropic/claude-opus-4-1", "15.00", "1.50", "75.00"),
    ("anthropic/claude-sonnet-4-6", "3.00", "0.30", "15.00"),
    ("anthropic/claude-sonnet-4-5", "3.00", "0.30", "15.00"),
    ("anthropic/claude-sonnet-4-0", "3.00", "0.30", "15.00"),
    ("anthropic/claude-haiku-4-5", "1.00", "0.10", "5.00"),
    ("anthropic/claude-3-5-haiku-latest", "0.80", "0.08", "4.00"),
    # DeepSeek (V3.2 prices; cached input: cache hits)
    ("deepseek/deepseek-chat", "0.28", "0.028", "0.42"),
    ("deepseek/deepseek-reasoner", "0.28", "0.028", "0.42"),
    # OpenRouter passes the providers' prices through
    ("openrouter/openai/gpt-4.1-mini", "0.40", "0.10", "1.60"),
    ("openrouter/openai/gpt-4o-mini", "0.15", "0.075", "0.60"),
    ("openrouter/anthropic/claude-sonnet-4.5", "3.00", "0.30", "15.00"),
    ("openrouter/anthropic/claude-haiku-4.5", "1.00", "0.10", "5.00"),
    ("openrouter/google/gemini-2.5-flash", "0.30", "0.075", "2.50"),
    ("openrouter/google/gemini-2.5-pro", "1.25", "0.31", "10.00"),
    ("openrouter/deepseek/deepseek-chat", "0.28", "0.028", "0.42"),
    # Local OpenAI-compatible servers: no price per token
    ("ollama/*", "0", "0", "0"),
    ("vllm/*", "0", "0", "0"),
    ("llamacpp/*", "0", "0", "0"),
    ("local/*", "0", "0", "0"),
]

# Transcription models (OpenAI-compatible /audio/transcriptions): USD per minute of audio.
TRANSCRIPTION_PRICE_TABLE: list[tuple[str, str]] = [
    ("openai/whisper-1", "0.006"),
    ("openai/gpt-4o-transcribe", "0.006"),
    ("openai/gpt-4o-mini-transcribe", "0.003"),
    ("groq/whisper-large-v3", "0.00185"),
    ("groq/whisper-large-v3-turbo", "0.00067"),
]
