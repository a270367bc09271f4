"""The webhook's chat tasks go to their project's shard queue, which every worker consumes."""

from bots.chat_shards import CHAT_SHARD_QUEUES, chat_shard_queue
from bots.tasks import chat_process_task
from config import queues
from config.celery_app import app


def routed_queue(*args: object, **kwargs: object) -> str:
    return app.amqp.router.route({}, chat_process_task.name, args, kwargs)["queue"].name


def test_a_chat_task_with_its_project_goes_to_the_project_shard():
    assert routed_queue(11, project_id=3) == chat_shard_queue(project_id=3) == "chat.3"
    assert routed_queue(12, project_id=3 + len(CHAT_SHARD_QUEUES)) == "chat.3"  # projects may share a shard
    assert routed_queue(13, project_id=4) == "chat.4"  # another project, another queue: not behind 3's burst


def test_the_sweep_requeues_go_to_the_plain_chat_queue_and_every_queue_is_consumed():
    assert routed_queue(11) == queues.CHAT
    assert set(CHAT_SHARD_QUEUES) <= {queue.name for queue in app.conf.task_queues}
