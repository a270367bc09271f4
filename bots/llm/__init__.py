"""The LLM layer: one tool-calling interface over OpenAI-compatible and Anthropic backends."""
