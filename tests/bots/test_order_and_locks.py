"""Per-chat order follows Telegram's message_id; per-message work (and a turn's lead) never locks the project's row."""

import contextlib
import random
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections, transaction

from bots.chat_processing import chat_process
from bots.conversation import turn_open
from bots.intake import update_receive
from bots.models import Chat, Generation
from leads.services import lead_finish
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


@contextlib.contextmanager
def project_row_held(project: Project) -> Iterator[None]:
    """Another session holds the project's row, as an operator saving its settings does (an UPDATE); meanwhile
    this session's lock waits give up after 3 s instead of hanging."""
    locked, release = threading.Event(), threading.Event()

    def hold_the_project_row() -> None:
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
            cursor.execute("SET lock_timeout = '3s'")
        yield
    finally:
        release.set()
        holder.join(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")


def test_processing_a_message_does_not_wait_for_a_lock_on_its_project_row(fake_telegram):
    project = ProjectFactory(weekly_budget_usd=6)  # a budget: the scheduler serialises per project
    fake_telegram.register_bot(project.bot_token, "alpha_bot")
    update_receive(project=project, payload=text_update(701, "hello"))
    chat = Chat.objects.get(project=project, telegram_chat_id=701)

    with project_row_held(project):
        generation = chat_process(chat_id=chat.pk)

    assert generation is not None
    assert generation.kind == Generation.Kind.CHAT_TURN


def test_finishing_a_lead_does_not_wait_for_a_lock_on_its_project_row(django_capture_on_commit_callbacks):
    project = ProjectFactory()
    update_receive(project=project, payload=text_update(702, "Please call me"))
    chat = Chat.objects.get(project=project, telegram_chat_id=702)

    with project_row_held(project), django_capture_on_commit_callbacks():  # the dispatch task is not needed here
        lead, created = lead_finish(chat=chat, summary="Anna wants a quote.")

    assert created
    assert lead.project_id == project.pk
