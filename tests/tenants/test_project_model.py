import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from tenants.encryption import decrypt
from tenants.models import Project
from tenants.selectors import ProjectNotFound, project_get_by_slug, project_list, projects_for_user
from tenants.services import ProjectConfigError, project_create, project_set, project_soft_delete
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_ONE = "1000000001:AAE-first-test-token-abcdefghijklmnop"
TOKEN_TWO = "1000000002:AAE-second-test-token-abcdefghijklmno"


def stored_token(project_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT bot_token FROM tenants_project WHERE id = %s", [project_id])
        return cursor.fetchone()[0]


def test_bot_token_is_encrypted_at_rest_and_readable_in_code():
    token = "123456789:AAHx-real-looking-token-value-0123456789"
    project = project_create(slug="shop", kind="sales", token=token)

    raw = stored_token(project.pk)
    assert token not in raw
    assert decrypt(raw) == token
    assert project_get_by_slug(slug="shop").bot_token == token


def test_create_generates_a_telegram_compatible_webhook_secret():
    first = project_create(slug="one", kind="sales", token=TOKEN_ONE)
    second = project_create(slug="two", kind="matching", token=TOKEN_TWO)
    assert first.webhook_secret != second.webhook_secret
    assert 32 <= len(first.webhook_secret) <= 256
    assert set(first.webhook_secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def test_create_rejects_a_duplicate_slug_and_an_unknown_kind():
    project_create(slug="dup", kind="sales", token=TOKEN_ONE)
    with pytest.raises(ProjectConfigError, match="exists already"):
        project_create(slug="dup", kind="sales", token=TOKEN_ONE)
    with pytest.raises(ProjectConfigError, match="kind"):
        project_create(slug="odd", kind="poetry", token=TOKEN_ONE)


def test_set_parses_typed_values_and_rejects_bad_ones_without_saving(project_a):
    project_set(project=project_a, key="weekly_budget_usd", value="6")
    project_set(project=project_a, key="followup_steps", value="60, 120,600")
    project_a.refresh_from_db()
    assert str(project_a.weekly_budget_usd) == "6.00"
    assert project_a.followup_steps == [60, 120, 600]

    with pytest.raises(ProjectConfigError, match="not an amount in USD"):
        project_set(project=project_a, key="weekly_budget_usd", value="lots")
    with pytest.raises(ProjectConfigError, match="unknown setting"):
        project_set(project=project_a, key="webhook_registered_at", value="x")
    project_a.refresh_from_db()
    assert str(project_a.weekly_budget_usd) == "6.00"


def test_each_setting_has_one_rule_wherever_it_is_typed(project_a, project_b):
    """`project set` and the model's own validation (what the console form runs) agree on every rule."""
    for key, value, reason in [
        ("followup_steps", "0,-5", "at least 1m"),
        ("bot_token", "badtoken", "not a Telegram bot token"),
        ("timezone", "Mars/Olympus", "Unknown time zone"),
        ("model_toolcaller", "gpt-4.1-mini", "not provider/model"),
        ("similarity_threshold", "3", "between -1 and 1"),
        ("quiet_hours_start", "25:00", "not a time of day"),
        ("weekly_cap_usd", "-1", "above 0"),
    ]:
        with pytest.raises(ProjectConfigError, match=reason):
            project_set(project=project_a, key=key, value=value)
    project_a.followup_steps = [0, -5]  # a value that bypasses the parser still meets the model's validator
    with pytest.raises(ValidationError, match="at least 1m"):
        project_a.full_clean()
    project_a.refresh_from_db()
    assert project_a.followup_steps == [300, 900, 2400, 86400]
    assert project_b.timezone == "UTC"

    project_set(project=project_a, key="followup_steps", value="90s, 1h30m, 2d")
    project_set(project=project_a, key="followup_steps", value="300, 900")  # bare numbers are seconds, as before
    project_a.refresh_from_db()
    assert project_a.followup_steps == [300, 900]
    project_set(project=project_a, key="followup_steps", value="")  # empty: no follow-ups
    project_a.refresh_from_db()
    assert project_a.followup_steps == []


def test_create_refuses_a_malformed_bot_token_without_echoing_it():
    with pytest.raises(ProjectConfigError, match="not a Telegram bot token") as refused:
        project_create(slug="shop", kind="sales", token="12345:short-secret")
    assert "short-secret" not in str(refused.value)
    assert not Project.objects.exists()


def test_soft_deleted_projects_are_hidden_but_kept(project_a, project_b):
    project_soft_delete(project=project_a)
    assert list(project_list()) == [project_b]
    assert set(project_list(include_deleted=True)) == {project_a, project_b}
    with pytest.raises(ProjectNotFound):
        project_get_by_slug(slug="alpha")


def test_operators_see_only_their_projects_and_superusers_see_all(project_a, project_b):
    operator = MembershipFactory(project=project_a).user
    superuser = UserFactory(is_superuser=True)
    outsider = UserFactory()
    ProjectFactory()

    assert list(projects_for_user(user=operator)) == [project_a]
    assert projects_for_user(user=superuser).count() == 3
    assert not projects_for_user(user=outsider).exists()
