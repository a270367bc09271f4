"""Every Celery queue, named in one place."""

DEFAULT = "default"
CHAT = "chat"  # per-chat turns and replies
LLM = "llm"  # generation queue processing
KNOWLEDGE = "knowledge"  # crawls and Qdrant access (one process in local mode)

ALL = (DEFAULT, CHAT, LLM, KNOWLEDGE)

# Celery's task_routes, by name pattern. The webhook's new messages take no queue: bots/chat_intake.py.
ROUTES = [
    {
        "bots.tasks.chat_*": {"queue": CHAT},
        "bots.tasks.callback_*": {"queue": CHAT},
        "bots.tasks.generations_*": {"queue": LLM},
        "knowledge.tasks.*": {"queue": KNOWLEDGE},
        "leads.tasks.*": {"queue": CHAT},
    },
]
