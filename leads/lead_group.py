"""Connecting a lead group without typing ids: `t.me/<bot>?startgroup=connect_<slug>`."""

from django.utils.translation import gettext_lazy as _

from bots.conversation import system_reply
from bots.models import Chat, Message
from bots.texts import in_language
from leads.services import lead_group_connect
from leads.topics import group_is_forum

CONNECTED = _("This group now receives the leads of {project}.")
FORUM = _("Topics are on: each lead gets its own topic, and what you write in it goes to the customer.")
ALREADY = _("This project already has a lead group; an operator can change it in the admin.")


def connect_link(project: object) -> str | None:
    username = getattr(project, "bot_username", "")
    return f"https://t.me/{username}?startgroup=connect_{project.slug}" if username else None


def connect_lead_group(chat: Chat, message: Message) -> bool:
    """Start handler: `/start connect_<slug>` from a group of this project's bot."""
    project = chat.project
    if message.command_args != f"connect_{project.slug}" or chat.chat_type not in ("group", "supergroup"):
        return False
    connected = lead_group_connect(project=project, chat=chat)
    text = in_language(project, CONNECTED).format(project=project) if connected else in_language(project, ALREADY)
    if connected and group_is_forum(project=project, group_id=chat.telegram_chat_id):  # asked again for each lead
        text += "\n" + in_language(project, FORUM)
    system_reply(chat=chat, text=text)
    return True
