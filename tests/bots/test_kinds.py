"""Project kinds plug into the engine through one registered protocol; the engine keeps out of their state."""

import pytest

from bots import generations
from bots.chat_processing import chat_process
from bots.intake import update_receive
from bots.kinds import callback_handler_for, kind_of, toolset_for
from bots.models import Chat, Generation
from leads.kind import SALES_KIND
from leads.sales_agent import SalesTools
from leads.state import SalesState
from matching.kind import MATCHING_KIND
from matching.toolset import MatchingToolset
from tenants.models import Project
from tests.factories import ProjectFactory
from tests.telegram_updates import message_update, photo_update

pytestmark = pytest.mark.django_db


def contact_update(chat_id: int) -> dict:
    contact = {"phone_number": "+49 30 1234567", "first_name": "Anna", "user_id": chat_id}
    return message_update(chat_id, contact=contact)


def test_each_kind_registers_everything_the_engine_calls_in_one_place():
    sales = ProjectFactory(kind=Project.Kind.SALES)
    matching = ProjectFactory(kind=Project.Kind.MATCHING)
    assert kind_of(sales) is SALES_KIND
    assert kind_of(matching) is MATCHING_KIND
    assert isinstance(toolset_for(sales), SalesTools)
    assert isinstance(toolset_for(matching), MatchingToolset)
    assert callback_handler_for(matching, "match:accept:1") is MATCHING_KIND.callbacks["match"]
    assert callback_handler_for(sales, "match:accept:1") is None  # a kind's buttons are its own
    for kind in (SALES_KIND, MATCHING_KIND):
        for name, generation in kind.generations.items():
            assert generations._handlers[name] is generation.handler
    assert Generation.Kind.TIMER_TURN in SALES_KIND.generations
    assert Generation.Kind.QUALIFICATION in MATCHING_KIND.generations


def test_the_sales_kind_keeps_files_and_the_shared_contact_in_its_own_state(fake_telegram):
    project = ProjectFactory(kind=Project.Kind.SALES, followup_steps=[])
    fake_telegram.register_bot(project.bot_token, "sales_bot")
    update_receive(project=project, payload=photo_update(601))
    update_receive(project=project, payload=contact_update(601))
    chat = Chat.objects.get(project=project, telegram_chat_id=601)
    chat_process(chat_id=chat.pk)
    chat.refresh_from_db()
    state = SalesState.of(chat)
    assert [file["kind"] for file in state.files] == ["photo"]
    assert state.shared_contact["phone_number"] == "+49 30 1234567"
    # The contact lives in the state for the lead, not in the conversation history.
    assert not chat.messages.filter(contact__isnull=False).exists()


def test_the_engine_writes_no_state_keys_for_a_kind_that_keeps_none(fake_telegram):
    project = ProjectFactory(kind=Project.Kind.MATCHING)
    fake_telegram.register_bot(project.bot_token, "matching_bot")
    update_receive(project=project, payload=photo_update(602))
    update_receive(project=project, payload=contact_update(602))
    chat = Chat.objects.get(project=project, telegram_chat_id=602)
    chat_process(chat_id=chat.pk)
    chat.refresh_from_db()
    assert chat.state == {}
    assert chat.messages.filter(contact__isnull=False).count() == 1  # kept as the user sent it
