"""Chat tasks go to one of a few queues by project, so that one tenant's burst cannot hold another's back.

A worker consumes every shard, and Celery's Redis transport takes its queues in turn (it rotates the
queue that just delivered to the back), so a project's chat task waits behind at most about one task of
each other busy shard, however many tasks a burst of one project queued in its own shard. Projects that
share a shard share its order; the sweep's re-enqueues use the plain chat queue.
"""

from typing import Any

CHAT_SHARDS = 8
CHAT_SHARD_QUEUES = tuple(f"chat.{shard}" for shard in range(CHAT_SHARDS))
SHARDED_TASKS = ("bots.tasks.chat_process_task",)


def chat_shard_queue(*, project_id: int) -> str:
    return CHAT_SHARD_QUEUES[int(project_id) % CHAT_SHARDS]


def route_chat_task_by_project(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
    """A Celery router: a chat task that names its project goes to that project's shard."""
    if name in SHARDED_TASKS and isinstance(kwargs, dict) and kwargs.get("project_id") is not None:
        return {"queue": chat_shard_queue(project_id=kwargs["project_id"])}
    return None
