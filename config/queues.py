"""Every Celery queue, named in one place."""

DEFAULT = "default"
CHAT = "chat"  # per-chat turns and replies
LLM = "llm"  # generation queue processing
KNOWLEDGE = "knowledge"  # crawls and Qdrant access (one process in local mode)

ALL = (DEFAULT, CHAT, LLM, KNOWLEDGE)
