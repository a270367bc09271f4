"""`manage.py chat` runs the turn in its own process, through the same (async) pipeline, and prints it."""

from io import StringIO

import pytest
from django.core.management import call_command

from bots.models import Generation, Turn
from tests.fakes import llm_api

pytestmark = pytest.mark.django_db


def test_the_terminal_chat_answers_through_the_pipeline(project_a, project_b, fake_llm, monkeypatch):
    fake_llm.openai.push(llm_api.text("Hello from the terminal bot!"))
    lines = iter(["Hi there"])

    def typed(prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", typed)
    out = StringIO()
    call_command("chat", project_a.slug, "--timeout", "20", stdout=out)

    assert "bot> Hello from the terminal bot!" in out.getvalue()
    turn = Turn.objects.get(project=project_a, trigger=Turn.Trigger.USER)
    assert turn.status == Turn.Status.SENT
    assert Generation.objects.get(chat=turn.chat).status == Generation.Status.DONE
    assert not Turn.objects.filter(project=project_b).exists()
