"""Explained introductions: the qualifier's verdict says what fits and what may not; each side reads it in
the project's language, with no name or contact of anyone before both accept; operators see all of it."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from bots.generations import generations_process_due
from matching.consent import anonymised, match_accept
from matching.models import Match
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.matching.dialogue import sent, texts_to
from tests.matching.test_qualifier import candidate_pair

pytestmark = pytest.mark.django_db

EXPLAINED = {
    "qualified": True,
    "reason": "Same stack; the budget covers the rate.",
    "fitting_skills": ["Python", "Django", "PostgreSQL"],
    "seniority": "Senior developer for a senior role.",
    "location_and_format": "Both remote, full-time.",
    "rates": "6000 EUR asked, up to 6500 EUR offered.",
    "concerns": ["Time zones differ by 3 hours"],
    # The model was told not to, but writes the other's name and handle anyway: they must not reach anyone.
    "for_a": "User2 (@user2, https://t.me/user2) needs exactly your Django experience.",
    "for_b": "This developer has the Django and PostgreSQL years you ask for; write to user1@example.com.",
}


def test_each_side_reads_why_the_other_fits_without_names_or_contacts(alpha, beta, fake_llm, fake_telegram):
    match = candidate_pair(alpha)
    fake_llm.openai.push(llm_api.tool_call("QualificationVerdict", EXPLAINED))

    generations_process_due()

    match.refresh_from_db()
    assert match.verdict["fitting_skills"] == ["Python", "Django", "PostgreSQL"]
    [to_seeker] = sent(fake_telegram, alpha, 1)
    [to_provider] = sent(fake_telegram, alpha, 2)
    for text in (to_seeker["text"], to_provider["text"]):
        assert "Skills that fit: Python, Django, PostgreSQL" in text
        assert "Rates: 6000 EUR asked, up to 6500 EUR offered." in text
        assert "Worth checking: Time zones differ by 3 hours" in text
        for secret in ("User1", "User2", "user1", "user2", "t.me", "example.com", "private note"):
            assert secret not in text, (secret, text)
    assert "needs exactly your Django experience" in to_seeker["text"]
    assert "has the Django and PostgreSQL years you ask for" in to_provider["text"]
    assert "Provider 2: hires Python devs." in to_seeker["text"]
    # The qualifier was asked to write for the project's language.
    [request] = fake_llm.requests_to("openai")
    assert "in English" in json.dumps(request.body["messages"])

    # Names and links come only with the connection.
    match_accept(match=match, side="a")
    match_accept(match=Match.objects.get(pk=match.pk), side="b")
    assert any("https://t.me/user2" in text for text in texts_to(fake_telegram, alpha, 1))
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


def test_the_explanation_speaks_the_projects_language(beta, fake_llm, fake_telegram):
    match = candidate_pair(beta)
    fake_llm.openai.push(llm_api.tool_call("QualificationVerdict", {**EXPLAINED, "for_a": "Им нужен ваш Django."}))

    generations_process_due()

    [to_seeker] = sent(fake_telegram, beta, 1)
    assert "Подходящие навыки: Python, Django, PostgreSQL" in to_seeker["text"]
    assert "Почему может подойти: Им нужен ваш Django." in to_seeker["text"]
    assert "Хотите познакомиться?" in to_seeker["text"]
    [request] = fake_llm.requests_to("openai")
    assert "in Russian" in json.dumps(request.body["messages"])
    assert Match.objects.get(pk=match.pk).status == Match.Status.QUALIFIED


def test_a_verdict_without_explanation_still_introduces(alpha, fake_llm, fake_telegram):
    candidate_pair(alpha)
    fake_llm.openai.push(llm_api.tool_call("QualificationVerdict", {"qualified": True, "reason": "fits"}))
    generations_process_due()
    [to_seeker] = sent(fake_telegram, alpha, 1)
    assert "Would you like to connect?" in to_seeker["text"]
    assert "Skills that fit" not in to_seeker["text"]


def test_anonymised_keeps_rates_and_removes_contacts():
    text = "Rate 5000-7000 EUR, call +351 912 345 678 or mail a.b@c.io, see www.x.org, @handle_x"
    assert anonymised(text, people=[]) == "Rate 5000-7000 EUR, call … or mail …, see …, …"


def test_operators_see_the_full_verdict(client, alpha, beta, fake_llm):
    match = candidate_pair(alpha)
    fake_llm.openai.push(llm_api.tool_call("QualificationVerdict", EXPLAINED))
    generations_process_due()
    operator = MembershipFactory(project=alpha).user
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="matching"))
    client.force_login(operator)

    page = client.get(reverse("admin:matching_match_change", args=[match.pk])).content.decode()

    assert "Skills that fit" in page
    assert "Python, Django, PostgreSQL" in page
    assert "Time zones differ by 3 hours" in page
    assert "Same stack; the budget covers the rate." in page
    other = candidate_pair(beta, a=5, b=6)
    assert client.get(reverse("admin:matching_match_change", args=[other.pk])).status_code in (302, 404)
