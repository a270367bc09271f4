"""The qualifier: a structured LLM verdict on both full profiles, applied once, then the introductions."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bots.generations import generations_process_due
from bots.models import Generation
from matching.matcher import Outcome, matching_iterate, matching_run
from matching.models import Match, MatchingState, Profile
from matching.qualifier import MAX_FAILED_QUALIFICATIONS, match_requalify, qualification_run
from tests.fakes import llm_api
from tests.matching.dialogue import active_profile, buttons, sent, toward

pytestmark = pytest.mark.django_db


def verdict(qualified: bool, reason: str = "The stack and the format fit.") -> llm_api.Reply:
    return llm_api.tool_call("QualificationVerdict", {"qualified": qualified, "reason": reason})


def candidate_pair(project, *, a: int = 1, b: int = 2) -> Match:
    active_profile(project, a, Profile.Role.SEEKER, toward(0, 1.0, 1), summary=f"Seeker {a}: Python developer.")
    active_profile(project, b, Profile.Role.PROVIDER, toward(0, 0.9, 2), summary=f"Provider {b}: hires Python devs.")
    match = matching_iterate(project=project).match
    assert match is not None
    assert match.status == Match.Status.PENDING
    return match


def test_a_qualified_match_introduces_each_user_to_the_others_matching_summary(alpha, fake_llm, fake_telegram):
    match = candidate_pair(alpha)
    fake_llm.openai.push(verdict(True))

    generations_process_due()

    match.refresh_from_db()
    assert (match.status, match.reason) == (Match.Status.QUALIFIED, "The stack and the format fit.")
    [to_seeker] = sent(fake_telegram, alpha, 1)
    [to_provider] = sent(fake_telegram, alpha, 2)
    assert "Provider 2: hires Python devs." in to_seeker["text"]
    assert "Seeker 1: Python developer." in to_provider["text"]
    for message in (to_seeker, to_provider):
        assert "private note" not in message["text"]
        assert buttons(message) == [f"match:accept:{match.pk}", f"match:reject:{match.pk}"]
        assert "Would you like to connect?" in message["text"]
    # The qualifier itself reads both full profiles, private observations included.
    [request] = fake_llm.requests_to("openai")
    prompt = json.dumps(request.body["messages"], ensure_ascii=False)
    assert "private note about 1" in prompt
    assert "private note about 2" in prompt
    assert Generation.objects.get(target_id=match.pk).status == "done"


def test_introductions_speak_the_projects_language(beta, fake_llm, fake_telegram):
    match = candidate_pair(beta)
    fake_llm.openai.push(verdict(True))

    generations_process_due()

    [to_seeker] = sent(fake_telegram, beta, 1)
    assert "Хотите познакомиться?" in to_seeker["text"]
    assert "предлагает работу" in to_seeker["text"]
    labels = [button["text"] for button in to_seeker["reply_markup"]["inline_keyboard"][0]]
    assert labels == ["Принять", "Отклонить"]
    assert Match.objects.get(pk=match.pk).status == Match.Status.QUALIFIED


def test_a_disqualified_match_sends_nothing_and_frees_both_users(alpha, fake_llm, fake_telegram):
    match = candidate_pair(alpha)
    MatchingState.objects.filter(project=alpha).update(next_run_at=timezone.now() + timedelta(hours=1))
    fake_llm.openai.push(verdict(False, "Both want the same role."))

    generations_process_due()

    match.refresh_from_db()
    assert (match.status, match.reason) == (Match.Status.DISQUALIFIED, "Both want the same role.")
    assert not fake_telegram.calls_to("sendMessage")
    assert MatchingState.objects.get(project=alpha).next_run_at <= timezone.now()  # the loop was woken


def test_a_qualification_run_twice_decides_and_introduces_once(alpha, fake_llm, fake_telegram):
    match = candidate_pair(alpha)
    generation = Generation.objects.get(target_id=match.pk)
    fake_llm.openai.push(verdict(True), verdict(False))

    qualification_run(generation)
    qualification_run(generation)  # a worker lost its lease and the generation ran again

    assert len(fake_llm.requests_to("openai")) == 1
    assert Match.objects.get(pk=match.pk).status == Match.Status.QUALIFIED
    assert len(sent(fake_telegram, alpha, 1)) == 1
    assert len(sent(fake_telegram, alpha, 2)) == 1


def test_a_failing_qualification_is_retried_later_then_given_up(alpha, fake_llm):
    match = candidate_pair(alpha)
    fake_llm.fail_all("openai", 503, retry_after=0)

    for attempt in range(1, MAX_FAILED_QUALIFICATIONS + 1):
        assert generations_process_due() == 1
        generations = Generation.objects.filter(target_id=match.pk).order_by("pk")
        assert [g.status for g in generations][:attempt] == ["failed"] * attempt
        if attempt < MAX_FAILED_QUALIFICATIONS:
            retry = generations.last()
            assert retry.status == "pending"
            assert retry.scheduled_for > timezone.now() + timedelta(minutes=4)  # later, not at once
            Generation.objects.filter(pk=retry.pk).update(scheduled_for=timezone.now())

    match.refresh_from_db()
    assert match.status == Match.Status.DISQUALIFIED
    assert match.reason.startswith(f"qualification failed {MAX_FAILED_QUALIFICATIONS} times")
    assert not Generation.objects.filter(target_id=match.pk, status="pending").exists()


def test_an_operator_can_requalify_a_disqualified_match_unless_a_user_is_at_the_limit(alpha, fake_llm):
    alpha.matching_max_open_introductions = 1
    alpha.save()
    match = candidate_pair(alpha)
    fake_llm.openai.push(verdict(False))
    generations_process_due()

    assert match_requalify(match=match)
    assert Match.objects.get(pk=match.pk).status == Match.Status.PENDING
    assert Generation.objects.filter(target_id=match.pk, status="pending").count() == 1

    fake_llm.openai.push(verdict(False))
    generations_process_due()
    other = active_profile(alpha, 3, Profile.Role.PROVIDER, toward(0, 0.8, 3))
    Match.objects.create(project=alpha, user_a=match.user_a, user_b=other, round=9, status=Match.Status.QUALIFIED)
    assert not match_requalify(match=match)  # its seeker is in another open match: at the limit of one
    assert Match.objects.get(pk=match.pk).status == Match.Status.DISQUALIFIED


def test_a_user_who_blocked_the_bot_is_never_offered_and_an_introduction_to_them_closes_the_match(
    alpha, fake_llm, fake_telegram
):
    alpha.matching_max_open_introductions = 1
    alpha.save()
    match = candidate_pair(alpha)
    fake_telegram.block_chat(alpha.bot_token, 2)
    fake_llm.openai.push(verdict(True))

    generations_process_due()

    match.refresh_from_db()
    assert match.status == Match.Status.REJECTED  # the seeker is not held by someone who can never answer
    assert match.reason.endswith("[closed: a user blocked the bot]")
    active_profile(alpha, 3, Profile.Role.PROVIDER, toward(0, 0.95, 3))
    MatchingState.objects.filter(project=alpha).update(current_round=5)
    run = matching_run(project=alpha)
    assert [i.outcome for i in run.iterations] == [Outcome.MATCHED, Outcome.IDLE]
    assert run.iterations[0].match.user_b.chat.telegram_chat_id == 3
    assert not Match.objects.filter(user_a__chat__telegram_chat_id=2, round=5).exists()  # never picked
