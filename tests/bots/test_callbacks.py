"""Every inline-button press is answered with answerCallbackQuery exactly once, whatever its handler does."""

import itertools
import time

import pytest

from bots import kinds
from bots.callbacks import callback_process
from bots.intake import update_receive
from bots.kinds import ProjectKind, register_kind
from bots.models import Chat, TelegramUpdate
from bots.toolsets import ClockTools
from leads.state import SalesState
from tests.bots.test_engine_integration import send, wait_until
from tests.factories import ProjectFactory

_ids = itertools.count(700_000)

BUTTONS_KIND = "test_buttons"


def press_update(chat_id: int, data: str) -> dict:
    number = next(_ids)
    return {
        "update_id": number,
        "callback_query": {
            "id": f"press-{number}", "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
            "chat_instance": f"ci-{chat_id}", "data": data,
            "message": {"message_id": 5, "date": 0, "text": "Pick one",
                        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"}},
        },
    }  # fmt: skip


class FlakyButton:
    """A kind's button handler that fails on its first `failures` presses, then answers with a notice."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self, chat: Chat, incoming) -> str | None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("the handler broke")
        return f"Done: {incoming.callback.data}"


@pytest.fixture
def button(monkeypatch):
    handler = FlakyButton(failures=1)
    monkeypatch.setitem(kinds._kinds, BUTTONS_KIND, None)  # restored (removed) after the test
    register_kind(ProjectKind(name=BUTTONS_KIND, toolset=lambda p: ClockTools(), state=SalesState,
                              callbacks={"pick": handler}))  # fmt: skip
    return handler


def answers(fake_telegram, project) -> list[dict]:
    return [c.params for c in fake_telegram.calls_to("answerCallbackQuery", token=project.bot_token) if c.ok]


@pytest.mark.django_db
def test_a_failing_handler_still_answers_the_press_once_and_its_retry_does_not_answer_again(
    fake_telegram, button, redis_client
):
    project = ProjectFactory(kind=BUTTONS_KIND)
    other = ProjectFactory(kind=BUTTONS_KIND)
    fake_telegram.register_bot(project.bot_token, "buttons_bot")
    fake_telegram.register_bot(other.bot_token, "other_bot")
    update = press_update(501, "pick:blue")
    stored = update_receive(project=project, payload=update)

    with pytest.raises(RuntimeError, match="the handler broke"):
        callback_process(update_id=stored.callback_update_id)

    [answer] = answers(fake_telegram, project)
    assert answer["callback_query_id"] == update["callback_query"]["id"]
    assert "text" not in answer  # no notice from a handler that failed: the spinner just stops
    assert TelegramUpdate.objects.get(pk=stored.callback_update_id).processed_at is None  # the sweep retries it

    callback_process(update_id=stored.callback_update_id)  # the sweep's retry: the handler works now
    assert button.calls == 2
    assert len(answers(fake_telegram, project)) == 1  # answered once, not again
    assert TelegramUpdate.objects.get(pk=stored.callback_update_id).processed_at is not None

    # A press that works is answered with its notice; the other bot answers its own press only.
    second = update_receive(project=other, payload=press_update(502, "pick:red"))
    callback_process(update_id=second.callback_update_id)
    [answer] = answers(fake_telegram, other)
    assert answer["text"] == "Done: pick:red"
    assert len(answers(fake_telegram, project)) == 1


@pytest.mark.django_db
def test_an_unknown_button_is_answered_without_a_notice(fake_telegram, button, redis_client):
    project = ProjectFactory(kind=BUTTONS_KIND)
    fake_telegram.register_bot(project.bot_token, "buttons_bot")
    stored = update_receive(project=project, payload=press_update(503, "nobody:handles:this"))
    callback_process(update_id=stored.callback_update_id)
    [answer] = answers(fake_telegram, project)
    assert "text" not in answer
    assert button.calls == 0


@pytest.mark.django_db(transaction=True)
def test_a_press_whose_processing_fails_in_the_worker_is_still_answered(
    client, fake_telegram, project_a, project_b, celery_worker
):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    celery_worker.stop()  # the press waits in the queue while its chat disappears (an operator erased it)
    update = press_update(601, "lead:anything")
    send(client, project_a, update)
    Chat.objects.filter(project=project_a, telegram_chat_id=601).delete()
    celery_worker.start()

    [answer] = fake_telegram.wait_for("answerCallbackQuery", token=project_a.bot_token, timeout=30)
    assert answer.params["callback_query_id"] == update["callback_query"]["id"]
    wait_until(lambda: "DoesNotExist" in celery_worker.log_tail(20_000), what="the failure in the worker log")
    time.sleep(0.5)
    assert len(fake_telegram.calls_to("answerCallbackQuery")) == 1
    assert TelegramUpdate.objects.get(project=project_a, update_id=update["update_id"]).processed_at is None
