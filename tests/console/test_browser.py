"""An operator in a real browser: edit a prompt, crawl and watch it finish, open leads, take a chat over."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bots.models import ModelPrice, Turn
from knowledge.models import CrawlJob
from leads.models import Lead
from tenants.models import Membership
from tests.console.browser import log_in, screenshot
from tests.console.conversation import say, texts_to
from tests.console.world import exchange
from tests.factories import MembershipFactory
from tests.fakes import llm_api

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(project_a, project_b, fake_telegram):
    for project, bot in ((project_a, "alpha_shop_bot"), (project_b, "beta_repairs_bot")):
        fake_telegram.register_bot(project.bot_token, bot)
        project.bot_username = bot
        project.quiet_hours_start = project.quiet_hours_end = None
        project.save()
    return MembershipFactory(project=project_a, role=Membership.Role.OPERATOR, user__username="olga").user


def test_an_operator_edits_the_prompt_and_watches_a_crawl_finish(page, operator, project_a, local_site, celery_worker):
    log_in(page, "olga")
    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")

    page.fill("#id_prompt", "You sell window cleaning in Springfield.")
    assert page.inner_text("#prompt-preview-own") == "You sell window cleaning in Springfield."  # live preview
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    project_a.refresh_from_db()
    assert project_a.prompt == "You sell window cleaning in Springfield."

    page.fill(
        "#crawl-form textarea[name=urls]", f"{local_site.url('en/prices.html')}\n{local_site.url('en/hours.html')}"
    )
    page.click("#crawl-now")
    page.wait_for_selector("text=started; its progress updates on this page")
    # The page polls the job; it turns "Done" without a reload.
    page.wait_for_selector("#crawl-jobs tr[data-status=done]", timeout=90_000)
    assert "2/2 pages, 0 failed" in page.inner_text("#crawl-jobs")
    assert CrawlJob.objects.get(project=project_a).status == "done"
    screenshot(page, "console-project.png")


def test_an_operator_opens_leads_takes_a_chat_over_and_replies(page, operator, project_a, project_b, fake_telegram,
                                                               fake_llm):  # fmt: skip
    ModelPrice.objects.update_or_create(model="openai/gpt-4.1-mini", defaults={
        "input_per_million": Decimal("0.40"), "output_per_million": Decimal("1.60")})  # fmt: skip
    fake_llm.openai.push(llm_api.tool_call("get_state", {}), llm_api.text("We clean windows for 7 dollars each."))
    chat = say(project_a, 21, "How much for windows?")
    fake_llm.openai.push(llm_api.text("Sure, shall I book you for Saturday?"))
    say(project_a, 21, "Great, I need 12 windows done")
    project_a.weekly_budget_usd = Decimal("10.00")  # set after the chat, so its turns were not spaced out
    project_a.save()
    lead = Lead.objects.create(project=project_a, chat=chat, summary="12 windows on Saturday", name="Anna",
                               contact="+1 555 0100", client_status="hot")  # fmt: skip
    foreign = Lead.objects.create(project=project_b, chat=say(project_b, 31, "привет"), summary="Beta secret lead")
    now = timezone.now()
    for day in range(7):
        for n in range(day % 3 + 1):
            exchange(project_a, 100 + n, asked=now - timedelta(days=day, hours=n), answered_after=2 + n * 3,
                     cost="0.15", status=("hot", "warm", "cold")[(day + n) % 3])  # fmt: skip

    log_in(page, "olga")
    page.goto("/admin/leads/lead/")
    page.click(f"text=Lead #{lead.pk} (alpha)")
    assert "12 windows on Saturday" in page.inner_text("#content")
    assert "Beta" not in page.inner_text("#content")

    page.goto(f"/admin/leads/lead/{foreign.pk}/change/")  # another project's lead: as if it did not exist
    assert page.url.endswith("/admin/")
    assert "doesn’t exist. Perhaps it was deleted?" in page.inner_text(".messagelist")
    assert "Beta secret lead" not in page.content()

    page.goto(f"/admin/bots/chat/{chat.pk}/change/")
    assert "We clean windows for 7 dollars each." in page.inner_text("#transcript")
    page.click("#take-over")
    page.wait_for_selector("#operator-reply")
    page.fill("#operator-reply", "Hi Anna, Olga here. Saturday at 10 works for us.")
    page.click("#send-reply")
    page.wait_for_selector(".messagelist .success")
    assert texts_to(fake_telegram, project_a, 21)[-1] == "Hi Anna, Olga here. Saturday at 10 works for us."
    assert Turn.objects.filter(chat=chat, trigger=Turn.Trigger.OPERATOR, status=Turn.Status.SENT).count() == 1
    assert "Olga here" in page.inner_text("#transcript")
    page.click(".tool-summary")  # the turn's tool call and its result unfold
    assert "get_state" in page.inner_text(".turn-tools")
    assert "lead_sent" in page.inner_text(".turn-tools pre")  # what the tool returned to the model
    screenshot(page, "console-transcript.png")

    page.goto(f"/admin/tenants/project/{project_a.pk}/dashboard/")
    assert page.inner_text("#fig-leads") == "14"  # 13 from the week's activity + Anna's
    assert page.locator("svg.chart").count() == 5
    screenshot(page, "console-dashboard.png")
