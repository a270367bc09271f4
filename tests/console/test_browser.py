"""An operator in a real browser: edit a prompt, crawl and watch it finish, open leads, take a chat over."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from bots.llm import chain
from bots.llm.pricing import model_prices_ensure
from bots.models import Generation, LLMCall, ModelPrice, Turn, TurnTrace
from knowledge.models import CrawlJob, Page
from leads.models import Lead
from matching.models import Match, Profile
from tenants.models import Membership
from tests.console.browser import PASSWORD, log_in, screenshot
from tests.console.conversation import say, texts_to
from tests.console.world import exchange, tenant_world
from tests.factories import MembershipFactory, ProjectFactory
from tests.fakes import llm_api

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def prices():
    model_prices_ensure()  # what the migrations load; a transactional test's flush removed them


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
    page.click("[name=_continue]")
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


def test_with_the_llm_down_every_screen_says_so_and_names_the_fix(page, operator, project_a, project_b, fake_llm,
                                                                  settings, monkeypatch):  # fmt: skip
    monkeypatch.setattr(chain, "sleep", lambda seconds: None)
    fake_llm.fail_all("openai", 503)
    chat = say(project_a, 61, "/start")
    say(project_a, 61, "How much for windows?")
    say(project_a, 62, "Are you there?")
    say(project_a, 63, "Hello")
    fake_llm.recover("openai")

    log_in(page, "olga")
    page.goto(f"/admin/tenants/project/{project_a.pk}/dashboard/")
    assert page.inner_text("#fig-replies") == "0"
    assert page.inner_text("#fig-failures") == "3"
    assert page.inner_text("#fig-messages") == "3"  # /start is not a message
    screenshot(page, "console-dashboard-llm-down.png")

    page.goto(f"/admin/bots/chat/{chat.pk}/change/")
    failed = page.locator("[data-problem=failed]")
    assert failed.count() == 1
    assert "Failed: no model answered" in failed.inner_text()
    assert "HTTP 503" in failed.locator(".turn-reason").inner_text()
    failed.locator("text=its LLM calls").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 3  # the three attempts behind the apology
    page.go_back()
    screenshot(page, "console-transcript-llm-down.png")

    settings.OPENAI_API_KEYS = []  # the web process reads settings per request: now nothing is configured
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.LLM_DETECT_LOCAL_OLLAMA = False
    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")
    banner = page.locator("[data-blocker=no_llm]")
    assert "No LLM is configured" in banner.inner_text()
    assert "Fix: Set OPENAI_API_KEYS" in banner.inner_text()
    assert "ollama serve" in banner.inner_text()
    screenshot(page, "console-project-no-llm.png")


def test_every_console_page_renders_as_one_product(page, project_a, project_b, fake_llm, fake_telegram, settings):
    """Screenshots of every page an operator visits, for a look; each page must render with its content."""
    matching = ProjectFactory(slug="gamma", name="Gamma IT matchmaker", kind="matching")
    alpha = tenant_world(project_a, "Alpha", chat_id=700)
    tenant_world(project_b, "Beta", chat_id=800)
    tenant_world(matching, "Gamma", chat_id=900)
    fake_telegram.register_bot(project_a.bot_token, "alpha_shop_bot")
    fake_llm.openai.push(llm_api.text("We clean windows for 7 dollars each."))
    say(project_a, 701, "How much for windows?")
    User.objects.create_superuser("root", "root@example.com", PASSWORD)

    log_in(page, "root")
    pages = {
        "index": "/admin/",
        "projects": "/admin/tenants/project/",
        "project": f"/admin/tenants/project/{project_a.pk}/change/",
        "project-matching": f"/admin/tenants/project/{matching.pk}/change/",
        "dashboard": f"/admin/tenants/project/{project_a.pk}/dashboard/",
        "dashboard-matching": f"/admin/tenants/project/{matching.pk}/dashboard/",
        "chats": "/admin/bots/chat/",
        "transcript": f"/admin/bots/chat/{alpha.chat.pk}/change/",
        "generations": "/admin/bots/generation/",
        "generation": f"/admin/bots/generation/{Generation.objects.filter(project=project_a).first().pk}/change/",
        "spend": "/admin/bots/generation/spend/",
        "llm-calls": "/admin/bots/llmcall/",
        "llm-call": f"/admin/bots/llmcall/{LLMCall.objects.filter(project=project_a).first().pk}/change/",
        "model-prices": "/admin/bots/modelprice/",
        "turn-traces": "/admin/bots/turntrace/",
        "turn-trace": f"/admin/bots/turntrace/{TurnTrace.objects.filter(project=project_a).first().pk}/change/",
        "leads": "/admin/leads/lead/",
        "lead": f"/admin/leads/lead/{alpha.lead.pk}/change/",
        "crm-webhooks": "/admin/leads/crmwebhook/",
        "follow-ups": "/admin/leads/followup/",
        "crawl-jobs": "/admin/knowledge/crawljob/",
        "crawl-job": f"/admin/knowledge/crawljob/{CrawlJob.objects.filter(project=project_a).first().pk}/change/",
        "new-crawl": "/admin/knowledge/crawljob/new/",
        "pages": "/admin/knowledge/page/",
        "page": f"/admin/knowledge/page/{Page.objects.filter(project=project_a).first().pk}/change/",
        "search": f"/admin/knowledge/crawljob/search/?project={project_a.pk}",
        "profiles": "/admin/matching/profile/",
        "profile": f"/admin/matching/profile/{Profile.objects.filter(project=matching).first().pk}/change/",
        "matches": "/admin/matching/match/",
        "match": f"/admin/matching/match/{Match.objects.filter(project=matching).first().pk}/change/",
        "members": "/admin/tenants/membership/",
        "users": "/admin/auth/user/",
        "schedules": "/admin/django_celery_beat/periodictask/",
    }
    for name, url in pages.items():
        response = page.goto(url)
        assert response.status == 200, f"{name}: {url} answered {response.status}"
        content = page.inner_text("body")
        for bad in ("object (", "Llm calls", "Crm webhooks", "Traceback", "//start"):
            assert bad not in content, f"{name} shows {bad!r}"
        screenshot(page, f"page-{name}.png")
    # The 1366 px laptop: nothing of the console pages is cut off sideways.
    page.set_viewport_size({"width": 1366, "height": 900})
    for name in ("project", "dashboard", "transcript", "chats", "llm-calls", "leads"):
        page.goto(pages[name])
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is {overflow} px wider than a 1366 px screen"
