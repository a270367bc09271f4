"""Shared fixtures: the fakes (Telegram, LLM) are plugins; tenants and infrastructure fixtures below."""

pytest_plugins = []
