"""Truth on every screen: a turn no model answered is counted, marked and traced as a failure, never as a reply."""

from decimal import Decimal

import pytest
from django.urls import reverse

from bots.chat_transcript import chat_transcript
from bots.generations import generation_interval
from bots.llm import chain
from bots.llm.pricing import model_price, model_prices_ensure
from bots.models import Generation, Turn, TurnTrace
from console.dashboard import dashboard_period, project_dashboard
from console.project_health import project_blockers
from tenants.models import Membership
from tests.console.conversation import say, texts_to
from tests.factories import MembershipFactory
from tests.fakes import llm_api

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def instant_backoff(monkeypatch):
    monkeypatch.setattr(chain, "sleep", lambda seconds: None)


@pytest.fixture
def bots(project_a, project_b, fake_telegram):
    for project in (project_a, project_b):
        project.quiet_hours_start = project.quiet_hours_end = None
        project.followup_steps = []
        project.save()
        fake_telegram.register_bot(project.bot_token, f"{project.slug}_bot")
    return project_a, project_b


def week(project):
    return project_dashboard(project=project, period=dashboard_period(project=project, name="week"))


def test_with_the_llm_down_turns_count_as_failures_are_marked_and_leave_a_trace(bots, fake_llm, fake_telegram,
                                                                               client):  # fmt: skip
    alpha, beta = bots
    fake_llm.fail_all("openai", 503)
    chat = say(alpha, 11, "/start")
    say(alpha, 11, "How much for windows?")
    say(alpha, 12, "Hello?")
    fake_llm.recover("openai")
    fake_llm.openai.push(llm_api.text("Здравствуйте! Чем помочь?"))
    say(beta, 21, "привет")

    board = week(alpha)
    assert (board.conversations, board.messages) == (2, 2)  # /start is a command, not a message
    assert (board.replies, board.failures, board.fallbacks, board.paused) == (0, 2, 0, 0)
    assert board.latency_samples == 0  # an apology is not a reply to time
    other = week(beta)
    assert (other.messages, other.replies, other.failures) == (1, 1, 0)
    assert other.latency_samples == 1
    assert texts_to(fake_telegram, beta, 21) == ["Здравствуйте! Чем помочь?"]

    failed = Turn.objects.filter(project=alpha, outcome=Turn.Outcome.LLM_FAILED)
    assert failed.count() == 2
    assert all("HTTP 503" in turn.error for turn in failed)
    for turn in failed:  # each failed turn leaves a trace: its attempts and the reason
        trace = TurnTrace.objects.get(turn=turn)
        assert [step["status"] for step in trace.steps[:-1]] == ["error"] * 3
        assert trace.steps[-1] == {"kind": "outcome", "outcome": "llm_failed", "error": turn.error}
    assert Generation.objects.filter(project=alpha, status=Generation.Status.FAILED).count() == 2

    items = chat_transcript(chat=chat).items
    assert [item.problem for item in items if item.turn is not None and item.turn.trigger == "user"] == ["failed"]

    client.force_login(MembershipFactory(project=alpha, role=Membership.Role.VIEWER).user)
    page = client.get(reverse("admin:bots_chat_change", args=[chat.pk])).content.decode()
    assert 'data-problem="failed"' in page
    assert "Failed: no model answered (the user got an apology)" in page
    assert "HTTP 503" in page
    assert f"?generation={failed.filter(chat=chat).get().generation_id}" in page  # the calls behind it
    assert "<code>/start</code>" in page
    assert "//start" not in page
    chats = client.get(reverse("admin:bots_chat_changelist")).content.decode()
    assert "Without the model’s answer" in chats or "Without the model&#x27;s answer" in chats
    assert chats.count(">1 turn</span>") == 2  # each of alpha's two chats: one turn without an answer
    dashboard = client.get(reverse("admin:tenants_project_dashboard", args=[alpha.pk])).content.decode()
    assert 'id="fig-replies">0<' in dashboard
    assert 'id="fig-failures">2<' in dashboard


def test_a_fallback_model_and_a_paused_project_are_told_apart_from_replies(bots, fake_llm, settings):
    alpha, beta = bots
    alpha.model_toolcaller = "anthropic/claude-haiku-4-5,openai/gpt-4.1-mini"
    alpha.save()
    fake_llm.fail_all("anthropic", 401, message="invalid x-api-key")
    fake_llm.openai.push(llm_api.text("Answered by the backup model."))
    say(alpha, 31, "Hi")
    fake_llm.recover("anthropic")

    beta.weekly_cap_usd = Decimal("0.01")
    beta.save()
    fake_llm.openai.push(llm_api.text("A costly answer.", prompt_tokens=100_000, completion_tokens=1_000))
    say(beta, 41, "first")
    say(beta, 41, "second")  # over the cap now: the unavailable text, no model call

    assert Turn.objects.get(project=alpha, trigger="user").outcome == Turn.Outcome.FALLBACK
    board = week(alpha)
    assert (board.replies, board.fallbacks, board.failures) == (0, 1, 0)
    assert board.latency_samples == 1  # a backup model's answer is a real reply
    assert "key_rejected" not in [b.code for b in project_blockers(project=alpha)]  # the backup answered after

    paused = Turn.objects.filter(project=beta, outcome=Turn.Outcome.PAUSED).get()
    assert paused.error == "weekly cap reached"
    assert TurnTrace.objects.get(turn=paused).steps[-1]["outcome"] == "paused"
    other = week(beta)
    assert (other.replies, other.paused, other.failures) == (1, 1, 0)
    assert "cap_reached" in [b.code for b in project_blockers(project=beta)]
    assert "cap_reached" not in [b.code for b in project_blockers(project=alpha)]


def test_the_console_names_what_stops_a_project_and_the_fix(bots, settings, client):
    alpha, beta = bots
    settings.OPENAI_API_KEYS = []
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.LLM_DETECT_LOCAL_OLLAMA = False
    alpha.model_summary = "openai/brand-new-model"
    alpha.save()

    codes = {b.code: b for b in project_blockers(project=alpha)}
    assert set(codes) == {"no_llm", "no_webhook", "no_price"}
    assert "needs OPENAI_API_KEYS" in codes["no_llm"].title
    assert "ollama serve" in codes["no_llm"].fix
    assert "openai/brand-new-model" in codes["no_price"].title
    assert "no_price" not in {b.code for b in project_blockers(project=beta)}  # its models are all priced

    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"  # a local server needs no key
    assert "no_llm" not in {b.code for b in project_blockers(project=alpha)}

    client.force_login(MembershipFactory(project=alpha, role=Membership.Role.VIEWER).user)
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    page = client.get(reverse("admin:tenants_project_change", args=[alpha.pk])).content.decode()
    assert 'data-blocker="no_llm"' in page
    assert "Fix: Set OPENAI_API_KEYS" in page


def test_a_fresh_install_prices_the_default_models_and_budget_pacing_works_unedited(bots, fake_llm, settings):
    for slot in ("LLM_MODEL_TOOLCALLER", "LLM_MODEL_EXTRACT", "LLM_MODEL_SUMMARY"):
        model = getattr(settings, slot).split(",")[0]
        assert model_price(model=model).row == model, f"the migrations left {model} unpriced"
    assert model_prices_ensure() == 0  # the migration loaded the whole table
    assert model_price(model="ollama/llama3.2").row == "ollama/*"

    alpha, _ = bots
    alpha.weekly_budget_usd = Decimal("1.00")
    alpha.save()
    fake_llm.openai.push(llm_api.text("Hello!", prompt_tokens=2_000, completion_tokens=200))
    say(alpha, 51, "Hi")
    done = Generation.objects.get(project=alpha, status=Generation.Status.DONE)
    assert done.cost_usd == Decimal("0.001120")  # 2000 x $0.40 + 200 x $1.60 per million
    spacing = generation_interval(last_cost_usd=done.cost_usd, weekly_budget_usd=alpha.weekly_budget_usd)
    assert round(spacing.total_seconds()) == 677  # 0.00112 x 604800 / 1.00


def test_a_rejected_key_is_named_on_the_console_until_a_call_succeeds(bots, fake_llm):
    alpha, beta = bots
    fake_llm.fail_all("openai", 401, message="Incorrect API key provided")
    say(alpha, 71, "Hi")
    fake_llm.recover("openai")

    [blocker] = [b for b in project_blockers(project=alpha) if b.code == "key_rejected"]
    assert blocker.level == "bad"
    assert "HTTP 401" in blocker.title
    assert "OPENAI_API_KEYS" in blocker.fix
    assert "key_rejected" not in {b.code for b in project_blockers(project=beta)}  # the other tenant is fine
    fake_llm.openai.push(llm_api.text("Back again."))
    say(alpha, 71, "Hello?")
    assert "key_rejected" not in {b.code for b in project_blockers(project=alpha)}
