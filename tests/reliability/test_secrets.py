"""Secrets and access: tokens and keys never leak; the webhook secret is compared in constant time; operators
reach only their projects, in lists, change pages, actions and exports; the API docs are staff-only."""

import csv
import io
import logging
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from bots import api as webhook_api
from bots.models import Chat, Generation, LLMCall, Message, QuarantinedUpdate, Turn
from leads.models import Lead, LeadDispatch
from tenants.models import Project
from tests.conftest import TEST_ANTHROPIC_KEYS, TEST_OPENAI_KEYS
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.reliability.conftest import send, wait_until
from tests.telegram_updates import text_update

SECRET_KEYS = [*TEST_OPENAI_KEYS, *TEST_ANTHROPIC_KEYS]


def secrets_of(*projects) -> list[str]:
    found = [*SECRET_KEYS]
    for project in projects:
        found += [project.bot_token, project.bot_token.split(":", 1)[1], project.webhook_secret]
    return found


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, f"{where} shows {leaked}"


@pytest.mark.django_db(transaction=True)
def test_no_token_or_key_in_logs_or_stored_errors_after_failures(
    client, bots, fake_telegram, fake_llm, worker, caplog, tmp_path
):
    alpha, beta = bots
    secrets = secrets_of(alpha, beta)
    caplog.set_level(logging.DEBUG)
    # Providers that quote the key back, a Telegram that refuses: the error paths are where secrets leak.
    fake_llm.fail_all("openai", 401, message=f"Incorrect API key provided: {TEST_OPENAI_KEYS[0]}")
    assert send(client, alpha, text_update(111, "alpha 111 hello")) == 200
    wait_until(lambda: Generation.objects.filter(status=Generation.Status.FAILED).exists(), what="failed turn",
               worker=worker)  # fmt: skip
    fake_llm.recover("openai")
    fake_llm.openai.push(llm_api.text("a reply Telegram refuses"))
    fake_telegram.fail_next("sendMessage", status=400, description=f"Bad Request: token {beta.bot_token}")
    assert send(client, beta, text_update(211, "beta 211 hello")) == 200
    wait_until(lambda: Turn.objects.filter(chat__telegram_chat_id=211, status=Turn.Status.FAILED).exists(),
               what="refused send", worker=worker)  # fmt: skip
    fake_telegram.block_chat(beta.bot_token, 212)
    fake_llm.openai.push(llm_api.text("to a user who blocked the bot"))
    assert send(client, beta, text_update(212, "beta 212 hello")) == 200
    wait_until(lambda: Chat.objects.filter(telegram_chat_id=212, blocked_at__isnull=False).exists(),
               what="blocked chat", worker=worker)  # fmt: skip
    time.sleep(0.5)

    assert_no_secret(caplog.text, secrets, "the test process's log")
    assert_no_secret(worker.log_path.read_text(errors="replace"), secrets, "the worker's log")
    stored = [*Generation.objects.values_list("error", flat=True), *Turn.objects.values_list("error", flat=True),
              *LLMCall.objects.values_list("error", flat=True)]  # fmt: skip
    assert any("Incorrect API key" in error for error in stored)  # the errors are kept, the secrets are not
    assert_no_secret("\n".join(stored), secrets, "stored errors")


@pytest.mark.django_db
def test_no_token_in_admin_pages(admin_client, project_a, project_b):
    chat = Chat.objects.create(project=project_a, telegram_chat_id=111, first_name="Anna")
    Turn.objects.create(project=project_a, chat=chat, status=Turn.Status.FAILED, reply="hi", error="send failed")
    secrets = [project_a.bot_token, project_b.bot_token, project_a.webhook_secret, project_b.webhook_secret,
               *SECRET_KEYS]  # fmt: skip
    pages = [
        reverse("admin:tenants_project_changelist"),
        reverse("admin:tenants_project_change", args=[project_a.pk]),
        reverse("admin:tenants_project_add"),
        reverse("admin:bots_chat_changelist"),
        reverse("admin:bots_chat_change", args=[chat.pk]),
        reverse("admin:bots_generation_changelist"),
        reverse("admin:bots_llmcall_changelist"),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert_no_secret(response.content.decode(), secrets, page)


@pytest.mark.django_db
def test_no_token_in_command_output(project_a, project_b, capsys, fake_telegram):
    new_token = "123456789:AAH-new-token-for-the-command-test-xyz"
    for token in (new_token, new_token.replace("new", "set")):  # `project` asks Telegram (getMe) about tokens
        fake_telegram.register_bot(token, "gamma_bot")
    call_command("project", "create", "--slug", "gamma", "--kind", "sales", "--token", new_token)
    call_command("project", "list")
    call_command("project", "show", "alpha")
    call_command("project", "set", "alpha", "bot_token", new_token.replace("new", "set"))
    output = capsys.readouterr()
    assert "gamma" in output.out
    assert_no_secret(output.out + output.err, [new_token, new_token.replace("new", "set"), project_a.bot_token,
                                               project_b.bot_token], "`manage.py project` output")  # fmt: skip


@pytest.mark.django_db
def test_an_unexpected_failure_echoes_nothing_and_quarantines_without_the_token(project_a, monkeypatch, settings):
    settings.DEBUG = False

    def explode(**kwargs: object) -> None:
        raise RuntimeError(f"database said no for {project_a.bot_token}")

    monkeypatch.setattr(webhook_api, "update_accept", explode)
    client = Client(raise_request_exception=False)
    response = client.post(
        f"/telegram/webhook/{project_a.slug}/", data="{}", content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
    )  # fmt: skip
    assert response.json() == {"ok": True, "description": "quarantined"}
    assert_no_secret(response.content.decode(errors="replace"), [project_a.bot_token], "the answer")
    assert "database said no" not in response.content.decode(errors="replace")
    [quarantined] = QuarantinedUpdate.objects.all()
    assert "database said no" in quarantined.error
    assert_no_secret(quarantined.error, [project_a.bot_token, project_a.bot_token.split(":")[1]], "quarantine")


@pytest.mark.django_db
def test_the_webhook_secret_is_compared_in_constant_time(client, project_a, project_b, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real_compare = webhook_api.hmac.compare_digest

    def recording_compare(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real_compare(given, expected)

    monkeypatch.setattr(webhook_api.hmac, "compare_digest", recording_compare)
    prefix_of_the_secret = project_a.webhook_secret[:-1]
    for secret in (prefix_of_the_secret, project_b.webhook_secret, project_a.webhook_secret):
        response = client.post(
            f"/telegram/webhook/{project_a.slug}/", data=text_update(111, "hi"), content_type="application/json",
            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret,
        )  # fmt: skip
        assert response.status_code == (200 if secret == project_a.webhook_secret else 403)
    assert [given.decode() for given, _ in compared] == [
        prefix_of_the_secret, project_b.webhook_secret, project_a.webhook_secret
    ]  # fmt: skip
    assert {expected.decode() for _, expected in compared} == {project_a.webhook_secret}
    assert Message.objects.count() == 1


@pytest.fixture
def two_tenant_leads(project_a, project_b):
    leads = {}
    for project, chat_id in ((project_a, 111), (project_b, 211)):
        chat = Chat.objects.create(project=project, telegram_chat_id=chat_id, first_name=f"Client of {project.slug}")
        leads[project.slug] = Lead.objects.create(project=project, chat=chat, summary=f"Lead of {project.slug}",
                                                  name=f"Name {project.slug}", status=Lead.Status.FAILED)  # fmt: skip
    return leads


@pytest.mark.django_db
def test_admin_actions_and_exports_are_scoped_to_the_operators_projects(client, project_a, two_tenant_leads,
                                                                         fake_telegram):  # fmt: skip
    operator = MembershipFactory(project=project_a).user
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["leads", "bots"]))
    client.force_login(operator)
    alpha_lead, beta_lead = two_tenant_leads["alpha"], two_tenant_leads["beta"]
    changelist = reverse("admin:leads_lead_changelist")

    page = client.get(changelist).content.decode()
    assert "Name alpha" in page
    assert "Name beta" not in page
    export = client.post(changelist, {"action": "export_csv",
                                      "_selected_action": [alpha_lead.pk, beta_lead.pk]})  # fmt: skip
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert [row[1] for row in rows[1:]] == ["alpha"]
    assert "Name beta" not in export.content.decode()

    client.post(changelist, {"action": "resend_to_crm", "_selected_action": [beta_lead.pk]})
    beta_lead.refresh_from_db()
    assert beta_lead.status == Lead.Status.FAILED  # untouched: not the operator's tenant
    assert not LeadDispatch.objects.filter(lead=beta_lead).exists()
    assert not fake_telegram.calls

    for name, obj in (("admin:leads_lead_change", beta_lead), ("admin:bots_chat_change", beta_lead.chat)):
        response = client.get(reverse(name, args=[obj.pk]))
        assert response.status_code == 302  # "does not exist", exactly as for a missing id
        assert "Name beta" not in client.get(response.url).content.decode()


@pytest.mark.django_db
def test_api_docs_and_schema_are_staff_only(client, admin_client):
    operator = MembershipFactory().user
    operator.is_staff = False
    operator.save()
    for url in ("/api/docs", "/api/openapi.json"):
        assert client.get(url).status_code == 302
        assert "/admin/login/" in client.get(url).url
    client.force_login(operator)
    assert client.get("/api/openapi.json").status_code == 302
    assert admin_client.get("/api/openapi.json").json()["info"]["title"] == "Switchboard"


WEBHOOK_SECRET = "whsec-given-on-the-command-line-0123456789"
NEW_WEBHOOK_SECRET = "whsec-changed-later-by-project-set-9876543210"
COMMAND_TOKEN = "5550002222:AAE-command-output-token-for-tests-xyz"


@pytest.mark.django_db
def test_no_token_or_webhook_secret_on_any_project_command_path(project_a, project_b, fake_telegram, caplog, capsys):
    """Every `manage.py project` path, successes and errors alike, in two tenants: no secret is ever printed."""
    caplog.set_level(logging.DEBUG)
    fake_telegram.register_bot(COMMAND_TOKEN, "gamma_bot")
    out = io.StringIO()

    def run(*args: str) -> None:
        try:
            call_command("project", *args, stdout=out, stderr=out)
        except CommandError as error:  # what the operator sees on the terminal for a refused command
            out.write(f"CommandError: {error}\n")

    run("create", "--slug", "gamma", "--kind", "sales", "--token", COMMAND_TOKEN, "--webhook-secret", WEBHOOK_SECRET)
    run("create", "--slug", "gamma", "--kind", "sales", "--token", COMMAND_TOKEN, "--webhook-secret", WEBHOOK_SECRET)
    run("set", "gamma", "webhook_secret", NEW_WEBHOOK_SECRET)
    run("set", "gamma", "webhook_secret", NEW_WEBHOOK_SECRET + "x" * 300)  # too long: refused
    run("set", "gamma", "bot_token", COMMAND_TOKEN)
    run("set", "alpha", "webhook_secret", NEW_WEBHOOK_SECRET + "-alpha")
    run("set", "no-such-project", "webhook_secret", WEBHOOK_SECRET)
    run("show", "gamma")
    run("show", "alpha")
    run("list", "--all")
    run("webhook", "gamma")
    fake_telegram.fail_next("setWebhook", status=400, description=f"Bad Request: secret {NEW_WEBHOOK_SECRET} refused")
    run("webhook", "gamma")
    run("webhook", "beta")  # an unregistered token: getMe refuses it

    project_a.refresh_from_db()
    assert project_a.webhook_secret == NEW_WEBHOOK_SECRET + "-alpha"
    gamma = Project.objects.get(slug="gamma")
    assert gamma.webhook_secret == NEW_WEBHOOK_SECRET
    assert fake_telegram.calls_to("setWebhook", token=COMMAND_TOKEN)[0].params["secret_token"] == NEW_WEBHOOK_SECRET
    printed = out.getvalue()
    assert "gamma: webhook_secret = (hidden)" in printed
    assert "webhook_secret         set" in printed
    assert "at most 256 characters" in printed  # the refusal says why, without the value
    assert "refused" in printed
    captured = capsys.readouterr()
    everything = printed + captured.out + captured.err + caplog.text
    secrets = [WEBHOOK_SECRET, NEW_WEBHOOK_SECRET, COMMAND_TOKEN, COMMAND_TOKEN.split(":")[1],
               *secrets_of(project_a, project_b)]  # fmt: skip
    assert_no_secret(everything, secrets, "`manage.py project` output and logs")


@pytest.mark.django_db
def test_webhook_secrets_and_configured_keys_are_redacted_from_log_lines(project_a, project_b, settings):
    from core.log_redaction import RedactingJsonFormatter

    project = Project.objects.get(pk=project_b.pk)  # loaded: its secrets are now known to the redaction
    formatter = RedactingJsonFormatter("%(message)s")
    for secret in (project.webhook_secret, project_a.webhook_secret, settings.SECRET_KEY, TEST_OPENAI_KEYS[0]):
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "setWebhook failed with %s", (secret,), None)
        line = formatter.format(record)
        assert secret not in line
        assert "[redacted]" in line
