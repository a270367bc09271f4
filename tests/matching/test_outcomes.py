"""Outcomes: both sides asked a while after connecting, answers stored once, failed pairs kept apart for good,
and every answer shown to the qualifier with those users' future candidates."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bots.generations import generations_process_due
from matching.consent import match_accept
from matching.matcher import matching_iterate
from matching.models import Match, MatchOutcome, Profile
from matching.outcomes import outcomes_ask_due
from matching.qualifier import match_decide, match_requalify
from matching.selectors import profile_best_counterpart
from tests.fakes import llm_api
from tests.matching.dialogue import active_profile, buttons, press, sent, texts_to, toward

pytestmark = pytest.mark.django_db


def connected_pair(project, *, a: int, b: int) -> Match:
    seeker = active_profile(project, a, Profile.Role.SEEKER, toward(0, 1.0, 1), summary=f"Seeker {a}: Python dev.")
    provider = active_profile(project, b, Profile.Role.PROVIDER, toward(0, 0.9, 2), summary=f"Provider {b}: Python.")
    match = matching_iterate(project=project).match
    assert (match.user_a, match.user_b) == (seeker, provider)
    match_decide(match=match, qualified=True, reason="fits")
    match_accept(match=match, side="a")
    match_accept(match=match, side="b")
    match.refresh_from_db()
    assert match.status == Match.Status.CONNECTED
    return match


def question(fake_telegram, project, chat_id: int, text: str) -> dict:
    [found] = [params for params in sent(fake_telegram, project, chat_id) if text in params["text"]]
    return found


def test_both_sides_are_asked_once_after_the_projects_delay(alpha, beta, fake_telegram):
    alpha.matching_outcome_delay_hours = 48
    alpha.save()
    match = connected_pair(alpha, a=1, b=2)
    other_tenant = connected_pair(beta, a=1, b=2)
    outcomes = MatchOutcome.objects.filter(match=match)
    assert outcomes.count() == 2
    for outcome in outcomes:
        assert outcome.ask_at == pytest.approx(match.closed_at + timedelta(hours=48), abs=timedelta(seconds=1))

    assert outcomes_ask_due() == 0  # not due yet: nothing sent
    later = timezone.now() + timedelta(hours=49)
    assert outcomes_ask_due(now=later) == 2  # both sides of alpha's pair; beta keeps the 72 h default
    assert outcomes_ask_due(now=later) == 0  # a second sweep sends nothing again
    assert outcomes_ask_due(now=later + timedelta(hours=24)) == 2  # beta's pair
    for project, chat_id in ((alpha, 1), (alpha, 2)):
        ask = question(fake_telegram, project, chat_id, "Did you talk with them?")
        outcome = outcomes.get(profile__chat__telegram_chat_id=chat_id)
        assert buttons(ask) == [f"match:talked:{outcome.pk}:yes", f"match:talked:{outcome.pk}:no"]
    assert MatchOutcome.objects.filter(match=other_tenant, asked_at__isnull=False).count() == 2


def test_answers_are_stored_once_with_an_optional_reason(alpha, fake_telegram):
    match = connected_pair(alpha, a=1, b=2)
    outcomes_ask_due(now=timezone.now() + timedelta(days=4))
    mine = MatchOutcome.objects.get(match=match, profile__chat__telegram_chat_id=1)
    theirs = MatchOutcome.objects.get(match=match, profile__chat__telegram_chat_id=2)

    press(alpha, 1, f"match:talked:{mine.pk}:yes")
    assert buttons(question(fake_telegram, alpha, 1, "Did it work out?")) == [
        f"match:worked:{mine.pk}:yes", f"match:worked:{mine.pk}:no",
    ]  # fmt: skip
    press(alpha, 1, f"match:worked:{mine.pk}:no")
    reasons = buttons(question(fake_telegram, alpha, 1, "What was the main reason?"))
    assert f"match:why:{mine.pk}:rates" in reasons
    assert f"match:why:{mine.pk}:skip" in reasons
    press(alpha, 1, f"match:why:{mine.pk}:rates")
    press(alpha, 1, f"match:why:{mine.pk}:skills")  # a second reason changes nothing
    press(alpha, 1, f"match:talked:{mine.pk}:no")  # nor does a late press of the first question
    press(alpha, 2, f"match:worked:{mine.pk}:yes")  # nor someone else's press

    mine.refresh_from_db()
    assert (mine.talked, mine.worked_out, mine.reason) == (True, False, "rates")
    theirs.refresh_from_db()
    assert (theirs.talked, theirs.worked_out) == (None, None)
    assert len([t for t in texts_to(fake_telegram, alpha, 1) if "take it into account" in t]) == 1

    press(alpha, 2, f"match:talked:{theirs.pk}:no")
    press(alpha, 2, f"match:why:{theirs.pk}:skip")
    theirs.refresh_from_db()
    assert (theirs.talked, theirs.worked_out, theirs.reason, theirs.reason_given) == (False, False, "", True)


def test_a_pair_that_did_not_work_out_is_never_offered_again_even_without_its_match(alpha, beta):
    match = connected_pair(alpha, a=1, b=2)
    MatchOutcome.objects.filter(match=match, profile=match.user_b).update(
        talked=True, worked_out=False, answered_at=timezone.now()
    )
    seeker = match.user_a
    # Both profiles change (which re-opens disqualified pairs), and the match row itself is gone.
    Profile.objects.filter(pk__in=[match.user_a_id, match.user_b_id]).update(profile_updated_at=timezone.now())
    Match.objects.filter(pk=match.pk).delete()
    seeker.refresh_from_db()
    assert profile_best_counterpart(profile=seeker, threshold=0.5) is None
    # An operator cannot bring them back either.
    again = Match.objects.create(project=alpha, user_a=seeker, user_b_id=match.user_b_id, round=9,
                                 status=Match.Status.DISQUALIFIED)  # fmt: skip
    assert match_requalify(match=again) is False
    # The same two vectors in the other tenant still meet: the rule is per pair, not per vector.
    active_profile(beta, 1, Profile.Role.SEEKER, toward(0, 1.0, 1))
    active_profile(beta, 2, Profile.Role.PROVIDER, toward(0, 0.9, 2))
    assert matching_iterate(project=beta).match.user_b is not None


def test_the_qualifier_reads_each_users_earlier_outcomes(alpha, beta, fake_llm):
    match = connected_pair(alpha, a=1, b=2)
    MatchOutcome.objects.filter(match=match, profile=match.user_a).update(
        talked=True, worked_out=False, reason="rates", reason_given=True, answered_at=timezone.now()
    )
    # A new provider for the seeker: the qualifier sees what happened last time.
    active_profile(alpha, 3, Profile.Role.PROVIDER, toward(0, 0.8, 3), summary="Provider 3: Python agency.")
    new = next(it.match for it in (matching_iterate(project=alpha) for _ in range(5)) if it.outcome == "matched")
    assert {new.user_a.chat.telegram_chat_id, new.user_b.chat.telegram_chat_id} == {1, 3}
    fake_llm.openai.push(llm_api.tool_call("QualificationVerdict", {"qualified": False, "reason": "rates"}))

    generations_process_due()

    [request] = fake_llm.requests_to("openai")
    prompt = json.dumps(request.body["messages"], ensure_ascii=False)
    assert "earlier introductions and their outcomes" in prompt
    assert "Provider 2: Python." in prompt  # which introduction
    assert "this person: talked, did not work out, reason: Rates or budget" in prompt
