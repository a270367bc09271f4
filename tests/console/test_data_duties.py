"""Exporting a chat's data and erasing a Telegram user's data in one project, recorded in the admin log."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from bots.models import Chat, Message, TelegramUpdate, Turn
from console.data_duties import ErasureRefused, telegram_user_erase
from leads.models import FollowUp, Lead
from matching.models import Match, Profile
from tenants.models import Membership
from tests.console.world import tenant_world
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def worlds(project_a, project_b):
    # The same Telegram user (1001) talks to both projects' bots.
    return tenant_world(project_a, "AAALPHA", chat_id=1001), tenant_world(project_b, "ZZBETA", chat_id=1001)


def test_export_holds_the_chats_history_leads_and_profile(client, worlds, project_a):
    alpha, _ = worlds
    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.VIEWER).user)

    response = client.get(reverse("admin:bots_chat_export", args=[alpha.chat.pk]))

    assert response["Content-Disposition"] == f'attachment; filename="alpha-chat-{alpha.chat.pk}.json"'
    data = json.loads(response.content)
    assert data["chat"]["username"] == "AAALPHA_user"
    assert [m["text"] for m in data["messages"]] == ["AAALPHA question"]
    assert data["replies"][0]["text"] == "AAALPHA reply"
    assert data["replies"][0]["tool_exchange"][0]["blocks"][0]["name"] == "hybrid_search"
    assert data["leads"][0]["summary"] == "AAALPHA summary"
    assert data["matching_profile"][0]["location"] == "AAALPHA"
    assert "ZZBETA" not in response.content.decode()
    assert LogEntry.objects.filter(object_id=str(alpha.chat.pk), change_message="Exported the chat's data").exists()


def test_erasure_removes_the_users_data_in_one_project_only(client, worlds, project_a, project_b):
    alpha, beta = worlds
    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.OWNER).user)
    lead_count = Lead.objects.filter(project=project_a).count()

    response = client.post(reverse("admin:bots_chat_erase", args=[alpha.chat.pk]))

    assert response.status_code == 302
    chat = Chat.objects.get(pk=alpha.chat.pk)
    assert (chat.username, chat.first_name, chat.user_id, chat.state) == ("", "[erased]", None, {})
    assert chat.telegram_chat_id != 1001  # a returning user starts a new chat
    assert not Message.objects.filter(chat=chat).exists()
    assert not Turn.objects.filter(chat=chat).exists()
    assert not Profile.objects.filter(chat=chat).exists()
    assert not Match.objects.filter(project=project_a, user_a__chat=chat).exists()
    assert not FollowUp.objects.filter(chat=chat).exists()
    lead = Lead.objects.get(pk=alpha.lead.pk)
    assert (lead.summary, lead.name, lead.contact, lead.shared_contact) == ("[erased]", "", "", None)
    assert Lead.objects.filter(project=project_a).count() == lead_count  # the figures still add up
    assert TelegramUpdate.objects.get(project=project_a, update_id=1001).payload == {"erased": True}
    entry = LogEntry.objects.get(object_id=str(chat.pk), change_message__startswith="Erased")
    assert "1 lead(s) stripped" in entry.change_message
    assert "AAALPHA" not in entry.change_message

    # Project B's data about the same person is untouched.
    assert Chat.objects.get(pk=beta.chat.pk).username == "ZZBETA_user"
    assert Message.objects.filter(chat=beta.chat).exists()
    assert Lead.objects.get(pk=beta.lead.pk).name == "ZZBETA"
    assert TelegramUpdate.objects.get(project=project_b, update_id=1001).payload != {"erased": True}


def test_erasing_an_unknown_user_is_refused_and_changes_nothing(worlds, project_a):
    with pytest.raises(ErasureRefused, match="no chat of Telegram user 4242"):
        telegram_user_erase(project=project_a, telegram_user_id=4242, operator="olga")
    assert Chat.objects.get(pk=worlds[0].chat.pk).username == "AAALPHA_user"


def test_only_owners_may_erase(client, worlds, project_a):
    alpha, _ = worlds
    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.OPERATOR).user)
    assert client.post(reverse("admin:bots_chat_erase", args=[alpha.chat.pk])).status_code == 404
    assert Chat.objects.get(pk=alpha.chat.pk).username == "AAALPHA_user"
