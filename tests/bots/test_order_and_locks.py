"""Per-chat order follows Telegram's message_id; per-message work never locks the project's row."""

import random
import threading

import pytest
from django.db import connection, connections, transaction

from bots.chat_processing import chat_process
from bots.conversation import turn_open
from bots.intake import update_receive
from bots.models import Chat, Generation
from tenants.models import Project
from tests.factories import ProjectFactory
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("seed", range(20))
def test_a_burst_stored_out_of_order_reaches_the_model_in_message_id_order(seed):
    project = ProjectFactory()
    updates = [text_update(700, f"part {n}") for n in range(20)]
    for n, update in enumerate(updates):
        update["message"]["message_id"] = 100 + n
    random.Random(seed).shuffle(updates)  # concurrent webhook deliveries are stored in any order
    for update in updates:
        update_receive(project=project, payload=update)
    chat = Chat.objects.get(project=project, telegram_chat_id=700)

    turn = turn_open(chat=chat, generation=None)

    assert turn.user_text.split("\n\n") == [f"part {n}" for n in range(20)]


def test_processing_a_message_does_not_wait_for_a_lock_on_its_project_row(fake_telegram):
    project = ProjectFactory(weekly_budget_usd=6)  # a budget: the scheduler serialises per project
    fake_telegram.register_bot(project.bot_token, "alpha_bot")
    update_receive(project=project, payload=text_update(701, "hello"))
    chat = Chat.objects.get(project=project, telegram_chat_id=701)
    locked, release = threading.Event(), threading.Event()

    def hold_the_project_row() -> None:  # as an operator saving the project's settings does (an UPDATE)
        with transaction.atomic():
            Project.objects.select_for_update(no_key=True).get(pk=project.pk)
            locked.set()
            release.wait(30)
        connections.close_all()

    holder = threading.Thread(target=hold_the_project_row)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # a wait on the project row fails instead of hanging
        generation = chat_process(chat_id=chat.pk)
        assert generation is not None
        assert generation.kind == Generation.Kind.CHAT_TURN
    finally:
        release.set()
        holder.join(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
