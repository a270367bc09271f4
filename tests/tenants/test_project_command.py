"""The `project` management command, end to end, with the fake Telegram Bot API."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Project

pytestmark = pytest.mark.django_db

TOKEN = "5550001111:AAE-secret-bot-token-for-tests-only-xyz"
UNKNOWN_TOKEN = "5550002222:AAE-a-token-telegram-does-not-know-xyz"


@pytest.fixture(autouse=True)
def known_token(fake_telegram):
    """`project create` and `set bot_token` ask Telegram (getMe) whose token it is."""
    fake_telegram.register_bot(TOKEN, "shop_helper_bot")


def run(*args: str) -> str:
    out = StringIO()
    call_command("project", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_create_then_webhook_registers_with_the_secret_and_never_shows_the_token(fake_telegram, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake_telegram.register_bot(TOKEN, "shop_helper_bot")

    output = run("create", "--slug", "shop", "--kind", "sales", "--token", TOKEN, "--language", "ru")
    output += run("webhook", "shop")
    output += run("show", "shop") + run("list")

    project = Project.objects.get(slug="shop")
    [set_webhook] = fake_telegram.calls_to("setWebhook", token=TOKEN)
    assert set_webhook.params["url"] == "https://switchboard.test/telegram/webhook/shop/"
    assert set_webhook.params["secret_token"] == project.webhook_secret
    assert fake_telegram.calls_to("getMe", token=TOKEN)
    assert project.bot_username == "shop_helper_bot"
    assert project.webhook_registered_at is not None
    assert "@shop_helper_bot verified" in output
    assert "bot_token              set" in output

    captured = capsys.readouterr()
    everything = output + caplog.text + captured.out + captured.err
    assert TOKEN not in everything
    assert TOKEN.split(":")[1] not in everything


def test_a_token_telegram_rejects_is_refused_at_once_and_never_leaked(fake_telegram, caplog, project_a):
    with pytest.raises(CommandError, match="Telegram rejected the bot token") as refused:
        run("create", "--slug", "shop", "--kind", "sales", "--token", UNKNOWN_TOKEN)
    assert not Project.objects.filter(slug="shop").exists()
    with pytest.raises(CommandError, match="Telegram rejected the bot token"):
        run("set", "alpha", "bot_token", UNKNOWN_TOKEN)
    project_a.refresh_from_db()
    assert project_a.bot_token != UNKNOWN_TOKEN

    with pytest.raises(CommandError) as error:  # a token revoked after it was set: the webhook says so
        run("webhook", "alpha")
    assert "rejected the bot token" in str(error.value)
    assert UNKNOWN_TOKEN not in str(refused.value) + str(error.value) + caplog.text
    assert project_a.bot_token not in str(error.value) + caplog.text
    assert not fake_telegram.calls_to("setWebhook")
    assert Project.objects.get(slug="alpha").webhook_registered_at is None


def test_webhook_when_telegram_refuses_reports_the_reason(fake_telegram):
    fake_telegram.register_bot(TOKEN, "shop_helper_bot")
    fake_telegram.fail_next(
        "setWebhook", status=400, description="Bad Request: bad webhook: HTTPS url must be provided"
    )
    run("create", "--slug", "shop", "--kind", "sales", "--token", TOKEN)
    with pytest.raises(CommandError, match=r"(?i)refused: bad webhook: https url must be provided"):
        run("webhook", "shop")


def test_create_with_prompt_file_lead_group_and_given_secret(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Вы консультант клининговой компании.", encoding="utf-8")
    run(
        "create", "--slug", "clean", "--kind", "matching", "--token", TOKEN, "--prompt-file", str(prompt),
        "--lead-group", "-1001234567890", "--start-reply", "Hi!", "--webhook-secret", "my_secret-1",
    )  # fmt: skip
    project = Project.objects.get(slug="clean")
    assert project.prompt == "Вы консультант клининговой компании."
    assert project.lead_group_id == -1001234567890
    assert project.webhook_secret == "my_secret-1"
    assert project.start_reply == "Hi!"


def test_bad_input_is_a_clear_error_and_changes_nothing(project_a):
    with pytest.raises(CommandError, match="exists already"):
        run("create", "--slug", "alpha", "--kind", "sales", "--token", TOKEN)
    with pytest.raises(CommandError, match="no project with slug nope"):
        run("set", "nope", "name", "x")
    with pytest.raises(CommandError, match="'twelve' is not a whole number"):
        run("set", "alpha", "lead_group_id", "twelve")
    with pytest.raises(CommandError, match="not a Telegram bot token"):
        run("create", "--slug", "badtoken", "--kind", "sales", "--token", "badtoken")
    with pytest.raises(CommandError, match="cannot read the prompt file"):
        run("create", "--slug", "new", "--kind", "sales", "--token", TOKEN, "--prompt-file", "/nonexistent")
    assert list(Project.objects.values_list("slug", flat=True)) == ["alpha"]


def test_set_token_hides_it_and_forgets_the_old_bot(project_a):
    Project.objects.filter(pk=project_a.pk).update(bot_username="old_bot", bot_id=1)
    output = run("set", "alpha", "bot_token", TOKEN)
    project_a.refresh_from_db()
    assert TOKEN not in output
    assert "(hidden)" in output
    assert project_a.bot_token == TOKEN
    assert project_a.bot_username == ""
    assert project_a.bot_id is None


def test_list_shows_projects_and_hides_deleted_ones_unless_asked(project_a, project_b):
    run("set", "beta", "name", "Beta")
    Project.objects.filter(pk=project_b.pk).update(deleted_at="2026-01-01T00:00:00Z")
    assert "alpha" in run("list")
    assert "beta" not in run("list")
    assert "deleted" in run("list", "--all")


def test_follow_up_steps_are_typed_and_shown_as_durations(project_a, project_b):
    output = run("set", "alpha", "followup_steps", "5m, 15m, 40m, 24h")
    assert "followup_steps = 5m, 15m, 40m, 24h" in output
    project_a.refresh_from_db()
    assert project_a.followup_steps == [300, 900, 2400, 86400]
    assert "followup_steps         5m, 15m, 40m, 24h" in run("show", "alpha")

    for bad, reason in (("0,-5", "at least 1m"), ("5 minutes", "not a duration"), ("45d", "at most 30d")):
        with pytest.raises(CommandError, match=reason):
            run("set", "alpha", "followup_steps", bad)
    project_a.refresh_from_db()
    project_b.refresh_from_db()
    assert project_a.followup_steps == [300, 900, 2400, 86400]
    assert project_b.followup_steps == [300, 900, 2400, 86400]  # the other tenant never changed


def test_a_change_by_command_records_where_it_came_from_in_the_history(project_a):
    run("set", "alpha", "prompt", "You sell door repairs.")
    newest = project_a.history.first()
    assert newest.prompt == "You sell door repairs."
    assert newest.history_change_reason == "Changed by a command or task"
