"""The project console: settings and prompts with a preview, webhook registration, crawls, deletion."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from knowledge.models import CrawlJob
from tenants.models import Membership, Project
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def change_form_data(response) -> dict:
    """The values the change form would post back as it stands (main form and inline management forms)."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        data[name] = value.pk if hasattr(value, "pk") else value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        for index, sub in enumerate(formset.forms):
            for name in sub.fields:
                value = sub.initial.get(name, sub.instance.pk if name == "id" else None)
                if value is not None:
                    data[f"{formset.prefix}-{index}-{name}"] = value.pk if hasattr(value, "pk") else value
    return data


@pytest.fixture
def operator(client, project_a, project_b):
    user = MembershipFactory(project=project_a, role=Membership.Role.OPERATOR).user
    client.force_login(user)
    return user


def test_the_console_previews_the_assembled_system_prompt(client, operator, project_a):
    page = client.get(reverse("admin:tenants_project_change", args=[project_a.pk])).content.decode()
    preview = page.split('id="prompt-preview"')[1].split("</div>")[0]
    assert "You are a Telegram assistant" in preview  # the engine's preamble
    assert "hybrid_search" in preview  # the sales kind's tool instructions
    assert '<span class="own" id="prompt-preview-own">You are a helpful test consultant.</span>' in preview
    assert "Verify token and register webhook" in page
    assert "Delete project" not in page  # operators do not delete; owners do


def test_an_operator_edits_prompt_and_follow_up_steps_and_bad_input_changes_nothing(client, operator, project_a):
    url = reverse("admin:tenants_project_change", args=[project_a.pk])
    data = change_form_data(client.get(url))
    assert data["followup_steps"] == "5m, 15m, 40m, 24h"
    assert data["bot_token"] == ""  # write-only: never rendered
    assert data["webhook_secret"] == ""  # write-only too: it lets anyone post updates as Telegram
    secret = project_a.webhook_secret

    saved = client.post(url, data | {"prompt": "Sell windows.", "followup_steps": "1m, 10m"})
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    project_a.refresh_from_db()
    assert (project_a.prompt, project_a.followup_steps) == ("Sell windows.", [60, 600])
    assert project_a.bot_token.startswith("70000")  # the empty token field kept the stored one
    assert project_a.webhook_secret == secret  # and the empty secret field the stored secret

    refused = client.post(url, data | {"prompt": "Changed?", "followup_steps": "60, soon"})
    assert refused.status_code == 200
    assert "&#x27;soon&#x27; is not a duration; write e.g. 5m, 40m, 24h or 2d" in refused.content.decode()
    negative = client.post(url, data | {"prompt": "Changed?", "followup_steps": "0,-5"})  # the rule `project set` has
    assert "Each follow-up waits at least 1m" in negative.content.decode()
    bad_token = client.post(url, data | {"prompt": "Changed?", "bot_token": "badtoken"})
    assert "This is not a Telegram bot token" in bad_token.content.decode()
    unknown_token = "5550002222:AAE-unknown-to-telegram-xyz-0123"
    unknown = client.post(url, data | {"prompt": "Changed?", "bot_token": unknown_token})
    assert "Telegram rejected the bot token (getMe)" in unknown.content.decode()  # asked at once, not at webhook time
    project_a.refresh_from_db()
    assert (project_a.prompt, project_a.followup_steps) == ("Sell windows.", [60, 600])

    assert client.post(url, data | {"webhook_secret": "rotated_secret-2"}).status_code == 302
    project_a.refresh_from_db()
    assert project_a.webhook_secret == "rotated_secret-2"
    refused_secret = client.post(url, data | {"webhook_secret": "not allowed!"})
    assert "Use 1-256 characters" in refused_secret.content.decode()
    project_a.refresh_from_db()
    assert project_a.webhook_secret == "rotated_secret-2"


def test_verify_and_register_shows_telegrams_answer(client, operator, project_a, fake_telegram):
    url = reverse("admin:tenants_project_webhook", args=[project_a.pk])
    refused = client.post(url, follow=True).content.decode()
    assert "Telegram rejected the bot token (getMe failed)" in refused

    fake_telegram.register_bot(project_a.bot_token, "alpha_shop_bot")
    page = client.post(url, follow=True).content.decode()
    assert (
        "token verified: @alpha_shop_bot; webhook registered at https://switchboard.test/telegram/webhook/alpha/"
        in (page)
    )
    assert "https://t.me/alpha_shop_bot?startgroup=connect_alpha" in page  # the lead group's connect link
    assert fake_telegram.webhook_info(project_a.bot_token)["url"].endswith("/telegram/webhook/alpha/")


def test_a_crawl_started_from_the_console_is_listed_with_its_progress(
    client, operator, project_a, django_capture_on_commit_callbacks
):
    url = reverse("admin:tenants_project_crawl", args=[project_a.pk])
    refused = client.post(url, {"urls": "not a url"}, follow=True).content.decode()
    assert "Nothing crawled: not a url: not a web address" in refused  # the shared crawl input validation
    assert not CrawlJob.objects.exists()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(url, {"urls": "https://shop.example/prices\nhttps://shop.example/faq"})
    assert len(queued) == 1
    job = CrawlJob.objects.get(project=project_a)
    assert sorted(job.sources.values_list("url", flat=True)) == ["https://shop.example/faq",
                                                                  "https://shop.example/prices"]  # fmt: skip
    progress = client.get(reverse("admin:tenants_project_crawls", args=[project_a.pk])).json()
    assert progress["jobs"][0] | {"created_at": None} == {
        "id": job.pk, "status": "queued", "status_display": "Queued", "phase": "Discovering URLs", "total_pages": 0,
        "pages_done": 0, "pages_failed": 0, "chunks_uploaded": 0, "percent": 0, "error": "", "created_at": None,
        "finished": False,
    }  # fmt: skip


def test_owners_delete_and_restore_and_the_log_keeps_it(client, project_a):
    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.OWNER).user)
    url = reverse("admin:tenants_project_lifecycle", args=[project_a.pk])

    client.post(url, {"do": "delete"})
    assert Project.objects.get(pk=project_a.pk).is_deleted
    assert (
        "Restore project" in client.get(reverse("admin:tenants_project_change", args=[project_a.pk])).content.decode()
    )
    client.post(url, {"do": "restore"})
    assert not Project.objects.get(pk=project_a.pk).is_deleted
    messages = list(LogEntry.objects.filter(object_id=str(project_a.pk)).values_list("change_message", flat=True))
    assert sorted(messages) == ["Deleted (soft) from the console", "Restored from the console"]


def test_operators_cannot_delete(client, operator, project_a):
    response = client.post(reverse("admin:tenants_project_lifecycle", args=[project_a.pk]), {"do": "delete"})
    assert response.status_code == 404
    assert not Project.objects.get(pk=project_a.pk).is_deleted


def test_owners_add_members_by_username_and_operators_cannot(client, project_a, project_b):
    owner = MembershipFactory(project=project_a, role=Membership.Role.OWNER).user
    UserFactory(username="newbie")
    MembershipFactory(project=project_b, user__username="beta_only")
    client.force_login(owner)
    url = reverse("admin:tenants_project_change", args=[project_a.pk])
    data = change_form_data(client.get(url))
    prefix = "memberships"
    index = int(data[f"{prefix}-TOTAL_FORMS"])

    def with_member(username: str) -> dict:
        return data | {f"{prefix}-TOTAL_FORMS": index + 1, f"{prefix}-{index}-username": username,
                       f"{prefix}-{index}-role": "viewer", f"{prefix}-{index}-project": project_a.pk}  # fmt: skip

    unknown = client.post(url, with_member("nobody"))
    assert "No active staff account is called &#x27;nobody&#x27;." in unknown.content.decode()
    twice = client.post(url, with_member(owner.username))
    assert "is a member of this project already" in twice.content.decode()
    assert client.post(url, with_member("newbie")).status_code == 302
    member = Membership.objects.get(project=project_a, user__username="newbie")
    assert member.role == "viewer"

    client.force_login(member.user)
    assert client.get(url).status_code == 200  # the new viewer sees the project now
    page = client.get(url).content.decode()
    assert "newbie" in page
    assert "beta_only" not in page  # other projects' members stay unseen
    assert client.post(url, with_member("beta_only")).status_code == 403  # viewers change nothing
    assert not Membership.objects.filter(project=project_a, user__username="beta_only").exists()
