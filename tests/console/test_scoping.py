"""Walk every registered ModelAdmin as a member of project A and find nothing of project B anywhere."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import NoReverseMatch, reverse

from knowledge.models import GoldenQuestion
from leads.models import LeadDispatch
from tenants.admin_scoping import scope_to_projects
from tenants.models import Membership, Project
from tests.console.world import tenant_world
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

MISSING_PK = 987654321


def snapshot(project: Project) -> dict[str, list[dict]]:
    """Every row of every tenant model that belongs to `project`, as plain values."""
    rows: dict[str, list[dict]] = {}
    for model in apps.get_models():
        scoped = scope_to_projects(model, Project.objects.filter(pk=project.pk))
        if scoped is not None:
            rows[model._meta.label] = sorted(scoped.values(), key=lambda row: row["id"])
    rows["leads.LeadDispatch"] = list(LeadDispatch.objects.filter(lead__project=project).order_by("pk").values())
    return rows


def url(model_admin, view: str, *args) -> str | None:
    opts = model_admin.model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)
    except NoReverseMatch:
        return None


def assert_clean(response, marker: str, where: str) -> None:
    body = response.content.decode(errors="replace")
    assert marker not in body, f"{where} shows project B's data"
    assert "Beta Repairs" not in body, f"{where} names project B"


@pytest.fixture
def worlds(project_a, project_b):
    return tenant_world(project_a, "AAALPHA", chat_id=1001), tenant_world(project_b, "ZZBETA", chat_id=2001)


@pytest.fixture
def owner_of_a(client, project_a):
    user = MembershipFactory(project=project_a, role=Membership.Role.OWNER).user
    client.force_login(user)
    return user


def test_every_model_admin_shows_a_member_nothing_of_another_project(client, worlds, owner_of_a, project_b):
    alpha, beta = worlds
    before = snapshot(project_b)
    walked = 0
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        changelist = url(model_admin, "changelist")
        lists = {query: client.get(changelist + query)
                 for query in ("", "?q=ZZBET", f"?project__id__exact={project_b.pk}", "?all=")}  # fmt: skip
        for query, response in lists.items():
            assert response.status_code in (200, 302, 403), f"{label} changelist{query}: {response.status_code}"
            assert_clean(response, beta.marker, f"{label} changelist{query}")
        scoped = scope_to_projects(model, Project.objects.filter(pk=project_b.pk))
        foreign = list(scoped.values_list("pk", flat=True)) if scoped is not None else []
        if model is LeadDispatch:
            foreign = list(LeadDispatch.objects.filter(lead__project=project_b).values_list("pk", flat=True))
        for pk in foreign:
            for view in ("change", "history", "delete"):
                target, missing = url(model_admin, view, pk), url(model_admin, view, MISSING_PK)
                response, missing_response = client.get(target), client.get(missing)
                # A foreign object's URL answers exactly like a missing one's.
                assert response.status_code == missing_response.status_code, f"{label} {view} {pk}"
                assert response.get("Location") == missing_response.get("Location"), f"{label} {view} {pk}"
                assert_clean(response, beta.marker, f"{label} {view}")
            walked += 1
        request = lists[""].wsgi_request
        for action in model_admin.get_actions(request) if model_admin.has_view_permission(request) else []:
            data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in foreign] or [str(MISSING_PK)]}
            if action == "broadcast":
                data |= {"send": "1", "text": "hello"}
            response = client.post(changelist, data, follow=True)
            assert_clean(response, beta.marker, f"{label} action {action}")
    assert walked >= 18  # each registered tenant model had project B rows to try
    assert snapshot(project_b) == before  # no action changed anything of project B
    # The member's own project is there, so the walk did look at real pages.
    assert alpha.marker in client.get(reverse("admin:leads_lead_changelist")).content.decode()


def test_console_pages_of_another_project_answer_like_missing_ones(client, worlds, owner_of_a, project_b):
    _, beta = worlds
    pages = [
        ("admin:tenants_project_dashboard", project_b.pk),
        ("admin:tenants_project_crawls", project_b.pk),
        ("admin:tenants_project_change", project_b.pk),
        ("admin:bots_chat_change", beta.chat.pk),
        ("admin:bots_chat_export", beta.chat.pk),
        ("admin:leads_lead_change", beta.lead.pk),
    ]
    for name, pk in pages:
        foreign, missing = client.get(reverse(name, args=[pk])), client.get(reverse(name, args=[MISSING_PK]))
        assert (foreign.status_code, foreign.get("Location")) == (missing.status_code, missing.get("Location")), name
        assert_clean(foreign, beta.marker, name)
    for name, pk, data in [
        ("admin:bots_chat_takeover", beta.chat.pk, {"do": "take_over"}),
        ("admin:bots_chat_erase", beta.chat.pk, {}),
        ("admin:tenants_project_webhook", project_b.pk, {}),
        ("admin:tenants_project_crawl", project_b.pk, {"urls": "https://example.com/"}),
        ("admin:tenants_project_lifecycle", project_b.pk, {"do": "delete"}),
        ("admin:tenants_project_evaluate", project_b.pk, {}),
    ]:
        assert client.post(reverse(name, args=[pk]), data).status_code == 404, name
    beta.chat.refresh_from_db()
    project_b.refresh_from_db()
    assert beta.chat.paused_at is None
    assert project_b.deleted_at is None
    assert not project_b.crawl_jobs.filter(sources__url="https://example.com/").exists()


def test_search_playground_crawl_form_and_autocomplete_offer_only_the_members_projects(
    client, worlds, owner_of_a, project_a, project_b
):
    playground = client.get(reverse("admin:knowledge_search_playground"), {"project": project_b.pk, "query": "x"})
    assert "Select a valid choice" in playground.content.decode()
    assert_clean(playground, "ZZBETA", "search playground")
    golden = {"project": project_b.pk, "question": "ZZBETA planted", "expected_url": "https://x.example/"}
    saved = client.post(reverse("admin:knowledge_golden_save"), golden, follow=True)
    assert "Nothing saved: Select a valid choice" in saved.content.decode()
    assert not GoldenQuestion.objects.filter(question="ZZBETA planted").exists()
    new_crawl = client.get(reverse("admin:knowledge_crawljob_new")).content.decode()
    assert "Alpha Cleaning" in new_crawl
    assert "Beta Repairs" not in new_crawl
    add_webhook = client.get(reverse("admin:leads_crmwebhook_add")).content.decode()
    assert "Alpha Cleaning" in add_webhook
    assert "Beta Repairs" not in add_webhook
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "tenants", "model_name": "membership", "field_name": "project", "term": ""},
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["Alpha Cleaning"]


def test_superusers_see_every_project(admin_client, worlds):
    page = admin_client.get(reverse("admin:leads_lead_changelist")).content.decode()
    assert "AAALPHA" in page
    assert "ZZBETA" in page


@pytest.mark.parametrize(
    ("role", "can_change", "can_act", "can_erase"),
    [("viewer", False, False, False), ("operator", True, True, False), ("owner", True, True, True)],
)
def test_roles_grade_what_a_member_may_do(client, worlds, project_a, role, can_change, can_act, can_erase):
    alpha, _ = worlds
    user = MembershipFactory(project=project_a, role=role).user
    client.force_login(user)
    assert not user.user_permissions.exists()  # rights come from the role, not Django's model permissions
    assert not Permission.objects.filter(user=user).exists()

    lead_page = client.get(reverse("admin:leads_lead_change", args=[alpha.lead.pk]))
    assert lead_page.status_code == 200
    assert "AAALPHA summary" in lead_page.content.decode()
    project_page = client.get(reverse("admin:tenants_project_change", args=[project_a.pk])).content.decode()
    assert ('name="prompt"' in project_page) is can_change
    chats = client.get(reverse("admin:bots_chat_changelist")).content.decode()
    assert ('value="take_over"' in chats) is can_act
    assert ('value="export_json"' in chats) is True  # exporting only reads: viewers may
    new_crawl = client.get(reverse("admin:knowledge_crawljob_new")).content.decode()
    assert ("Alpha Cleaning" in new_crawl) is can_act  # viewers cannot start crawls
    leads_csv = client.post(
        reverse("admin:leads_lead_changelist"), {"action": "export_csv", ACTION_CHECKBOX_NAME: [alpha.lead.pk]}
    )
    assert "AAALPHA summary" in leads_csv.content.decode()  # every role may export
    client.post(reverse("admin:bots_chat_takeover", args=[alpha.chat.pk]), {"do": "take_over"})
    alpha.chat.refresh_from_db()
    assert (alpha.chat.paused_at is not None) is can_act
    erase = client.post(reverse("admin:bots_chat_erase", args=[alpha.chat.pk]))
    assert (erase.status_code == 302) is can_erase
