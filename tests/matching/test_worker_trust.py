"""Explained introductions, CV intake, outcomes and the open-introduction limit on a real Celery worker,
reached through the webhook, with the fake Telegram and LLM servers (beat's tick is sent by the test)."""

import json
import time
from collections.abc import Callable

import pytest
from django.test import Client

from bots.models import Chat
from matching.funnel import matching_funnel
from matching.models import CvDocument, Match, MatchingState, MatchOutcome, Profile
from matching.profiles import profile_save
from matching.tasks import matching_tick
from tests.fakes import llm_api
from tests.knowledge.test_extraction import make_pdf
from tests.matching.dialogue import callback_update, document_update, file_on_telegram, sender, texts_to
from tests.matching.test_worker_flow import post
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

SEEKER = "Senior Python backend developer, Django and PostgreSQL, looking for a remote full-time job."
PROVIDER = "A product company hires a senior Python developer (Django, PostgreSQL), remote, full-time."
PROVIDER_2 = "An agency hires a senior Python developer with Django and PostgreSQL for remote contract work."
VERDICT = {
    "qualified": True,
    "reason": "Same stack.",
    "fitting_skills": ["Python", "Django", "PostgreSQL"],
    "seniority": "Senior for senior.",
    "location_and_format": "Remote on both sides.",
    "for_a": "They need a Django developer like you.",
    "for_b": "A senior Django developer who wants exactly this role.",
}


def wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready_profile(project, chat_id: int, role: str, summary: str) -> Profile:
    chat = Chat.objects.create(
        project=project, telegram_chat_id=chat_id, user_id=chat_id, username=f"user{chat_id}",
        first_name=f"Name{chat_id}",
    )  # fmt: skip
    saved = profile_save(
        project=project, chat=chat, complete=True,
        changes={"role": role, "summary": summary, "matching_summary": summary},
    )  # fmt: skip
    return saved.profile


def activate(client: Client, project, *chat_ids: int) -> None:
    for chat_id in chat_ids:
        post(client, project, callback_update(chat_id, "match:activate"))


def qualifier_prompts(fake_llm) -> list[str]:
    return [
        json.dumps(r.body["messages"], ensure_ascii=False)
        for r in fake_llm.requests_to("openai")
        if any(t.get("function", {}).get("name") == "QualificationVerdict" for t in r.body.get("tools") or [])
    ]


def test_an_introduction_names_the_fitting_skills_and_no_name_or_contact_before_both_accept(
    client, alpha, beta, fake_telegram, fake_llm, celery_worker
):
    ready_profile(alpha, 301, "seeker", SEEKER)
    ready_profile(alpha, 302, "provider", PROVIDER)
    fake_llm.openai.responder = lambda request: llm_api.tool_call("QualificationVerdict", VERDICT)

    activate(client, alpha, 301, 302)
    match = wait_until(lambda: Match.objects.filter(project=alpha, introduced_at__isnull=False).first(),
                       what="the introduction")  # fmt: skip
    fake_telegram.wait_for("sendMessage", count=4, token=alpha.bot_token, timeout=60)
    for chat_id, other in ((301, 302), (302, 301)):
        [intro] = [t for t in texts_to(fake_telegram, alpha, chat_id) if "Would you like to connect?" in t]
        assert "Skills that fit: Python, Django, PostgreSQL" in intro
        for secret in (f"Name{other}", f"user{other}", "t.me", "tg://"):
            assert secret not in intro

    for chat_id in (301, 302):
        post(client, alpha, callback_update(chat_id, f"match:accept:{match.pk}"))
    wait_until(lambda: any("https://t.me/user302" in t for t in texts_to(fake_telegram, alpha, 301)), what="contact")
    assert Match.objects.get(pk=match.pk).status == Match.Status.CONNECTED
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


def cv_agent(request: llm_api.LLMRequest) -> llm_api.Reply:
    """A model that reads a CV: saves what it says, asks for the one missing thing, completes on the answer."""
    messages = request.body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        if "not complete yet" in json.dumps(last) or "saved; the profile" in json.dumps(last):
            return llm_api.text("Thank you for the CV! One question: when could you start?")
        return llm_api.text("Your profile is ready: check the card and press Start matching.")
    said = json.dumps(last, ensure_ascii=False)
    if "Django, PostgreSQL and Celery" in said:
        return llm_api.tool_call("save_profile", {
            "roles": "seeker", "summary": "Senior Python developer, 8 years.", "location": "Porto",
            "work_format": "remote, full-time", "rates": "5500 EUR/month",
            "matching_summary": "Senior Python backend developer (Django, PostgreSQL), remote full-time.",
            "complete": False,
        })  # fmt: skip
    if "two weeks" in said:
        return llm_api.tool_call("save_profile", {"availability": "in two weeks", "complete": True})
    return llm_api.text("Tell me about yourself.")


def test_a_cv_pdf_gives_a_complete_profile_after_one_question(
    client, alpha, beta, fake_telegram, fake_llm, celery_worker
):
    fake_llm.openai.responder = cv_agent
    pdf = make_pdf("Senior Python Developer\n8 years of Python, Django, PostgreSQL and Celery\nPorto, remote")
    file_id = file_on_telegram(fake_telegram, pdf, "cv.pdf")

    post(client, alpha, document_update(401, file_id=file_id, file_name="cv.pdf", mime_type="application/pdf",
                                        file_size=len(pdf)))  # fmt: skip
    wait_until(lambda: any("One question" in t for t in texts_to(fake_telegram, alpha, 401)), what="the question")
    post(client, alpha, text_update(401, "In two weeks.", sender=sender(401)))
    profile = wait_until(
        lambda: Profile.objects.filter(project=alpha, chat__telegram_chat_id=401, state=Profile.State.READY).first(),
        what="the complete profile",
    )
    questions = [t for t in texts_to(fake_telegram, alpha, 401) if "?" in t]
    assert len(questions) == 1, questions
    assert (profile.location, profile.availability) == ("Porto", "in two weeks")
    assert CvDocument.objects.get(profile=profile).file_name == "cv.pdf"
    assert fake_telegram.calls_to("getFile", token=alpha.bot_token)
    assert not CvDocument.objects.filter(project=beta).exists()


def test_did_not_work_out_keeps_the_pair_apart_and_reaches_the_qualifier(
    client, alpha, beta, fake_telegram, fake_llm, celery_worker
):
    alpha.matching_outcome_delay_hours = 0
    alpha.save()
    ready_profile(alpha, 501, "seeker", SEEKER)
    ready_profile(alpha, 502, "provider", PROVIDER)
    fake_llm.openai.responder = lambda request: llm_api.tool_call("QualificationVerdict", VERDICT)
    activate(client, alpha, 501, 502)
    match = wait_until(lambda: Match.objects.filter(project=alpha, introduced_at__isnull=False).first(),
                       what="the introduction")  # fmt: skip
    for chat_id in (501, 502):
        post(client, alpha, callback_update(chat_id, f"match:accept:{match.pk}"))
    wait_until(lambda: MatchOutcome.objects.filter(match=match).count() == 2, what="the outcome timers")

    matching_tick.delay()  # what beat sends every minute
    wait_until(lambda: all(any("Did you talk" in t for t in texts_to(fake_telegram, alpha, c)) for c in (501, 502)),
               what="both questions")  # fmt: skip
    mine = MatchOutcome.objects.get(match=match, profile__chat__telegram_chat_id=501)
    post(client, alpha, callback_update(501, f"match:talked:{mine.pk}:yes"))
    wait_until(lambda: any("Did it work out?" in t for t in texts_to(fake_telegram, alpha, 501)), what="question 2")
    post(client, alpha, callback_update(501, f"match:worked:{mine.pk}:no"))
    wait_until(lambda: any("main reason" in t for t in texts_to(fake_telegram, alpha, 501)), what="the reasons")
    post(client, alpha, callback_update(501, f"match:why:{mine.pk}:rates"))
    wait_until(lambda: MatchOutcome.objects.filter(pk=mine.pk, reason="rates").exists(), what="the reason")

    # A new provider arrives; both old profiles change too (which would re-open a merely disqualified pair).
    ready_profile(alpha, 503, "provider", PROVIDER_2)
    activate(client, alpha, 503)
    second = wait_until(
        lambda: Match.objects.filter(project=alpha, user_b__isnull=False).exclude(pk=match.pk).first(),
        what="the next candidate",
    )
    wait_until(lambda: len(qualifier_prompts(fake_llm)) >= 2, what="its qualification")
    assert {second.user_a.chat.telegram_chat_id, second.user_b.chat.telegram_chat_id} == {501, 503}
    prompt = qualifier_prompts(fake_llm)[-1]
    assert "did not work out, reason: Rates or budget" in prompt

    Profile.objects.filter(project=alpha, chat__telegram_chat_id__in=[501, 502]).update(
        profile_updated_at=match.created_at.replace(year=match.created_at.year + 1)
    )
    wait_until(lambda: not Match.objects.filter(project=alpha, status=Match.Status.PENDING).exists(), what="qualified")
    round_before = MatchingState.objects.get(project=alpha).current_round
    MatchingState.objects.filter(project=alpha).update(next_run_at=None)
    matching_tick.delay()
    wait_until(lambda: MatchingState.objects.get(project=alpha).current_round > round_before, what="a whole round")
    pair = Match.objects.filter(project=alpha, user_a__chat__telegram_chat_id__in=[501, 502],
                                user_b__chat__telegram_chat_id__in=[501, 502])  # fmt: skip
    assert list(pair) == [match]
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)
    # The scenario's funnel: 3 users, 2 introductions, 1 connected and talked, none worked out.
    wait_until(lambda: Match.objects.filter(pk=second.pk, introduced_at__isnull=False).exists(), what="introduced")
    funnel = {stage: count for stage, _, count in matching_funnel(project=alpha).stages}
    assert funnel == {"started": 3, "complete": 3, "active": 3, "introduced": 3, "introductions": 2, "accepted": 1,
                      "connected": 1, "talked": 1, "worked": 0}  # fmt: skip
    assert all(count == 0 for _, _, count in matching_funnel(project=beta).stages)


def test_a_user_at_the_open_introduction_limit_is_skipped_until_one_closes(
    client, alpha, beta, fake_telegram, fake_llm, celery_worker
):
    alpha.matching_max_open_introductions = 1
    alpha.save()
    ready_profile(alpha, 601, "provider", PROVIDER)
    ready_profile(alpha, 602, "seeker", SEEKER)
    ready_profile(alpha, 603, "seeker", SEEKER.replace("Senior", "Lead"))
    fake_llm.openai.responder = lambda request: llm_api.tool_call("QualificationVerdict", VERDICT)

    activate(client, alpha, 601, 602, 603)
    first = wait_until(lambda: Match.objects.filter(project=alpha, introduced_at__isnull=False).first(),
                       what="the first introduction")  # fmt: skip
    provider = Profile.objects.get(project=alpha, chat__telegram_chat_id=601)
    assert provider.pk in (first.user_a_id, first.user_b_id)
    seeker_chat = first.user_b.chat if first.user_a_id == provider.pk else first.user_a.chat
    skipped = Profile.objects.get(project=alpha, chat__telegram_chat_id=603 if seeker_chat.telegram_chat_id == 602
                                  else 602)  # fmt: skip
    # The other seeker is tried while the provider is at the limit, and finds nobody.
    wait_until(lambda: Match.objects.filter(user_a=skipped, status=Match.Status.UNMATCHED).exists(), what="a skip")
    assert Match.objects.filter(project=alpha, user_b__isnull=False).count() == 1

    post(client, alpha, callback_update(seeker_chat.telegram_chat_id, f"match:reject:{first.pk}"))
    second = wait_until(
        lambda: Match.objects.filter(project=alpha, user_b__isnull=False).exclude(pk=first.pk).first(),
        what="the skipped user's turn",
    )
    assert {second.user_a_id, second.user_b_id} == {provider.pk, skipped.pk}
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)
