import pytest
from django.db import connection

from tenants.encryption import decrypt
from tenants.selectors import ProjectNotFound, project_get_by_slug, project_list, projects_for_user
from tenants.services import ProjectConfigError, project_create, project_set, project_soft_delete
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


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
    first = project_create(slug="one", kind="sales", token="1:x")
    second = project_create(slug="two", kind="matching", token="2:y")
    assert first.webhook_secret != second.webhook_secret
    assert 32 <= len(first.webhook_secret) <= 256
    assert set(first.webhook_secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def test_create_rejects_a_duplicate_slug_and_an_unknown_kind():
    project_create(slug="dup", kind="sales", token="1:x")
    with pytest.raises(ProjectConfigError, match="exists already"):
        project_create(slug="dup", kind="sales", token="1:x")
    with pytest.raises(ProjectConfigError, match="kind"):
        project_create(slug="odd", kind="poetry", token="1:x")


def test_set_parses_typed_values_and_rejects_bad_ones_without_saving(project_a):
    project_set(project=project_a, key="weekly_budget_usd", value="6")
    project_set(project=project_a, key="followup_steps", value="60, 120,600")
    project_a.refresh_from_db()
    assert str(project_a.weekly_budget_usd) == "6.00"
    assert project_a.followup_steps == [60, 120, 600]

    with pytest.raises(ProjectConfigError, match="not a valid decimal"):
        project_set(project=project_a, key="weekly_budget_usd", value="lots")
    with pytest.raises(ProjectConfigError, match="unknown setting"):
        project_set(project=project_a, key="webhook_registered_at", value="x")
    project_a.refresh_from_db()
    assert str(project_a.weekly_budget_usd) == "6.00"


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
