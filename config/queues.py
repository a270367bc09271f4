"""Every Celery queue, named in one place."""

from bots.chat_shards import CHAT_SHARD_QUEUES, route_chat_task_by_project

DEFAULT = "default"
CHAT = "chat"  # per-chat turns and replies
LLM = "llm"  # generation queue processing
KNOWLEDGE = "knowledge"  # crawls and Qdrant access (one process in local mode)

ALL = (DEFAULT, CHAT, *CHAT_SHARD_QUEUES, LLM, KNOWLEDGE)  # chat.0 ... chat.7: the webhook's chat tasks by project

# Celery's task_routes: the webhook's chat tasks by project (bots/chat_shards.py), then name patterns.
ROUTES = [
    route_chat_task_by_project,
    {
        "bots.tasks.chat_*": {"queue": CHAT},
        "bots.tasks.callback_*": {"queue": CHAT},
        "bots.tasks.generations_*": {"queue": LLM},
        "knowledge.tasks.*": {"queue": KNOWLEDGE},
        "leads.tasks.*": {"queue": CHAT},
    },
]
