"""Connecting a lead group without typing ids: `t.me/<bot>?startgroup=connect_<slug>`."""

from django.utils.translation import gettext_lazy as _

from bots.conversation import system_reply
from bots.models import Chat, Message
from bots.texts import in_language
from leads.services import lead_group_connect

CONNECTED = _("This group now receives the leads of {project}.")
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
    system_reply(chat=chat, text=text)
    return True
