"""`manage.py chat <slug>`: talk to a project's bot in the terminal, through the same pipeline."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bots.chat_processing import chat_process, terminal_session_hooks
from bots.conversation import unanswered_messages
from bots.generations import generations_process_due
from bots.intake import update_receive
from bots.llm.local_server import openai_base_url
from bots.llm.readiness import llm_readiness
from bots.models import Chat, Generation, Turn
from tenants.selectors import ProjectNotFound, project_get_by_slug

DONE_STATUSES = (Turn.Status.SENT, Turn.Status.SILENT, Turn.Status.SEND_UNKNOWN, Turn.Status.FAILED)


def terminal_update(*, chat_id: int, text: str, name: str) -> dict[str, Any]:
    """A Telegram-shaped update, so that the terminal takes exactly the webhook's path."""
    entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else []
    sender = {"id": chat_id or 1, "is_bot": False, "first_name": name}
    message = {
        "message_id": int(time.time() * 1000) % 2**31, "date": int(time.time()), "text": text, "entities": entities,
        "chat": {"id": chat_id, "type": "private", "first_name": name}, "from": sender,
    }  # fmt: skip
    return {"update_id": -time.time_ns() // 1000, "message": message}


class Command(BaseCommand):
    help = "Talk to a project's bot in the terminal (same pipeline as Telegram; replies are printed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--chat-id", type=int, default=0, help="Terminal conversation id (default 0).")
        parser.add_argument("--name", default="Terminal user")
        parser.add_argument("--timeout", type=float, default=300.0, help="Longest wait for one reply, in seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ProjectNotFound:
            raise CommandError(f"no project with slug {options['slug']}") from None
        chat, _ = Chat.objects.get_or_create(
            project=project, telegram_chat_id=options["chat_id"], defaults={"channel": Chat.Channel.TERMINAL}
        )
        if chat.channel != Chat.Channel.TERMINAL:
            raise CommandError(f"chat id {options['chat_id']} is a Telegram chat of {project.slug}; pick another")
        seen = chat.turns.order_by("-pk").values_list("pk", flat=True).first() or 0
        readiness = llm_readiness(project=project)
        if not readiness.ready:  # say it before the first apology, not after
            self.stdout.write(self.style.WARNING(f"{readiness.problem}\nFix: {readiness.fix}\n"))
        else:
            self.stdout.write(f"Model: {', '.join(ref.id for ref in readiness.chain)} at {openai_base_url()}"
                              if any(ref.protocol == "openai" for ref in readiness.chain)
                              else f"Model: {', '.join(ref.id for ref in readiness.chain)}")  # fmt: skip
        for hook in terminal_session_hooks:  # e.g. the knowledge store's owner, when no worker runs
            if note := hook():
                self.stdout.write(f"({note})")
        self.stdout.write(f"Talking to {project} ({project.kind}). /start resets, /debug traces, Ctrl-D quits.")
        while True:
            try:
                text = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.stdout.write("")
                return
            if not text:
                continue
            update_receive(
                project=project, payload=terminal_update(chat_id=chat.telegram_chat_id, text=text, name=options["name"])
            )
            seen = self._answer(chat, seen, options["timeout"])

    def _answer(self, chat: Chat, seen: int, timeout: float) -> int:
        """Process the chat here (a running worker may take it too) and print every new reply."""
        deadline = time.monotonic() + timeout
        chat_process(chat_id=chat.pk)
        while time.monotonic() < deadline:
            generations_process_due(chat=chat)
            for turn in chat.turns.filter(pk__gt=seen, status__in=DONE_STATUSES).order_by("pk"):
                if turn.reply:
                    self.stdout.write(f"bot> {turn.reply}")
                seen = turn.pk
            active = chat.generations.filter(status__in=Generation.ACTIVE).order_by("scheduled_for").first()
            if active is None and not unanswered_messages(chat).exists():
                return seen
            if active is not None and active.scheduled_for > timezone.now():
                wait = (active.scheduled_for - timezone.now()).total_seconds()
                self.stdout.write(f"(the weekly budget schedules this reply in {wait:.0f} s)")
            time.sleep(0.2)
        self.stdout.write("(no reply yet; it will be stored when it comes)")
        return seen
