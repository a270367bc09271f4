"""Profiles learned in conversation: the agent's tools, the card, Start matching, changes and /start."""

import json

import pytest

from bots.generations import generations_process_due
from bots.llm.embeddings import OFFLINE_MODEL_ID
from bots.models import Chat
from matching.matcher import Outcome, matching_run
from matching.models import Match, Profile
from tests.fakes import llm_api
from tests.matching.dialogue import buttons, press, say, sent, texts_to

pytestmark = pytest.mark.django_db

PYTHON_SEEKER = {
    "roles": "seeker",
    "summary": "Senior Python developer, 6 years of Django.",
    "location": "Lisbon",
    "work_format": "remote, full-time",
    "rates": "6000 EUR/month",
    "private_observations": "Left the last job after a conflict; prefers small teams.",
    "matching_summary": "Senior Python backend developer with 6 years of Django, PostgreSQL and Celery, looking for "
    "a remote full-time job in a product company.",
}
REACT_SEEKER_RU = {
    "roles": "seeker",
    "summary": "Фронтенд-разработчик, React и TypeScript.",
    "location": "Казань",
    "work_format": "удалённо, частичная занятость",
    "private_observations": "Стесняется говорить о ставке.",
    "matching_summary": "Фронтенд-разработчик, 4 года опыта с React и TypeScript, ищет проектную работу или частичную "
    "занятость удалённо.",
}
REACT_PROVIDER = {
    "roles": "provider",
    "summary": "Startup CTO hiring for the web app.",
    "work_format": "remote contract, 20 h/week",
    "rates": "up to 40 USD/h",
    "private_observations": "Budget is tight.",
    "matching_summary": "A startup is hiring a frontend developer with React and TypeScript for remote part-time or "
    "contract work.",
}
PYTHON_PROVIDER_RU = {
    "roles": "provider",
    "summary": "Продуктовая компания, нанимает в команду платформы.",
    "location": "Белград",
    "work_format": "удалённо, полная занятость",
    "private_observations": "Долгий процесс найма.",
    "matching_summary": "Продуктовая компания ищет senior бэкенд-разработчика на Python и Django с PostgreSQL, "
    "удалённо, полная занятость.",
}


def complete_profile_in_conversation(fake_llm, project, chat_id: int, fields: dict, first: str, second: str) -> None:
    """Two turns: the model saves what it heard, then completes the profile when it knows enough."""
    partial = {"roles": fields["roles"], "summary": fields["summary"], "complete": False}
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", partial), llm_api.text("Nice! What format and conditions do you want?")
    )
    say(project, chat_id, first)
    rest = {key: value for key, value in fields.items() if key not in partial}
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {**rest, "complete": True}),
        llm_api.text("Thanks, I have everything. Check your card and press Start matching."),
    )
    say(project, chat_id, second)


def card_of(fake_telegram, project, chat_id: int) -> dict:
    [card] = [params for params in sent(fake_telegram, project, chat_id) if buttons(params) == ["match:activate"]]
    return card


def test_four_users_complete_profiles_in_conversation_and_meet_their_closest_counterpart(
    alpha, beta, fake_llm, fake_telegram
):
    users = [
        (101, PYTHON_SEEKER, "Hi! I'm a Python developer looking for a job.", "Remote and full-time, 6k EUR."),
        (102, REACT_SEEKER_RU, "Привет! Я фронтендер, ищу работу.", "Удалённо, можно частичную занятость."),
        (103, REACT_PROVIDER, "We need a React developer.", "Contract, 20 hours a week, remote."),
        (104, PYTHON_PROVIDER_RU, "Ищем Python-разработчика.", "Удалённо, полный день, Django."),
    ]
    for chat_id, fields, first, second in users:
        complete_profile_in_conversation(fake_llm, alpha, chat_id, fields, first, second)
    # Another tenant's Python seeker, a perfect fit for 104, must never be offered to alpha's users.
    complete_profile_in_conversation(
        fake_llm, beta, 104, PYTHON_SEEKER, "Ищу работу Python-разработчиком.", "Удалённо, полный день."
    )

    for chat_id, fields, _, _ in users:
        replies = texts_to(fake_telegram, alpha, chat_id)
        assert replies[0] == "Nice! What format and conditions do you want?"
        assert replies[-1] == "Thanks, I have everything. Check your card and press Start matching."
        card = card_of(fake_telegram, alpha, chat_id)["text"]
        assert card.startswith("Your profile")
        assert fields["matching_summary"] in card
        assert fields["private_observations"] not in card
        profile = Profile.objects.get(project=alpha, chat__telegram_chat_id=chat_id)
        assert (profile.state, profile.embedding) == (Profile.State.READY, None)
        assert profile.private_observations == fields["private_observations"]
    # The second turn's model call saw the first turn's save in the state snapshot.
    second_turn = fake_llm.requests_to("openai")[2].body["messages"][0]["content"]
    assert "Saved profile (state: onboarding: not complete yet):" in second_turn
    assert "roles: seeker" in second_turn

    alpha.matching_max_open_introductions = 1  # each meets only their closest counterpart
    alpha.save()
    for chat_id, *_ in users:
        press(alpha, chat_id, "match:activate")
    press(beta, 104, "match:activate")
    for chat_id, fields, _, _ in users:
        profile = Profile.objects.get(project=alpha, chat__telegram_chat_id=chat_id)
        assert profile.state == Profile.State.ACTIVE
        assert (profile.embedding_model, profile.embedded_text) == (OFFLINE_MODEL_ID, fields["matching_summary"])
        assert texts_to(fake_telegram, alpha, chat_id)[-1].startswith("Matching has started.")

    run = matching_run(project=alpha)
    assert [i.outcome for i in run.iterations] == [Outcome.MATCHED, Outcome.MATCHED, Outcome.IDLE]
    pairs = {
        frozenset((m.user_a.chat.telegram_chat_id, m.user_b.chat.telegram_chat_id)): m.similarity
        for m in Match.objects.filter(project=alpha, status=Match.Status.PENDING)
    }
    # English and Russian summaries meet across languages: Python with Python, React with React.
    assert set(pairs) == {frozenset((101, 104)), frozenset((102, 103))}
    assert all(similarity > 0.55 for similarity in pairs.values())
    assert [i.outcome for i in matching_run(project=beta).iterations] == [Outcome.UNMATCHED, Outcome.ROUND_ADVANCED]

    fake_llm.openai.responder = lambda request: llm_api.tool_call(
        "QualificationVerdict", {"qualified": True, "reason": "Same stack, compatible format."}
    )
    generations_process_due()

    for chat_id, other in [(101, PYTHON_PROVIDER_RU), (104, PYTHON_SEEKER), (102, REACT_PROVIDER),
                           (103, REACT_SEEKER_RU)]:  # fmt: skip
        introduction = sent(fake_telegram, alpha, chat_id)[-1]
        assert other["matching_summary"] in introduction["text"]
        assert other["private_observations"] not in introduction["text"]
        assert buttons(introduction)[0].startswith("match:accept:")


def test_a_complete_profile_needs_the_essentials_and_the_model_is_told_why(alpha, fake_llm, fake_telegram):
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"roles": "seeker", "complete": True}),
        llm_api.text("What kind of work are you looking for?"),
    )
    say(alpha, 101, "I want a job.")

    tool_result = fake_llm.requests_to("openai")[1].body["messages"][-1]
    assert tool_result["role"] == "tool"
    assert "complete needs roles, summary and matching_summary" in tool_result["content"]
    assert not Profile.objects.filter(chat__telegram_chat_id=101).exclude(state="onboarding").exists()
    assert texts_to(fake_telegram, alpha, 101) == ["What kind of work are you looking for?"]


def test_the_agent_is_taught_in_the_projects_language_and_reads_the_profile(beta, fake_llm):
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"roles": "provider", "location": "Берлин", "complete": False}),
        llm_api.tool_call("get_profile", {}),
        llm_api.text("Кого вы ищете?"),
    )
    say(beta, 201, "Мы нанимаем разработчиков.")

    first, _, third = (r.body for r in fake_llm.requests_to("openai"))
    system = first["messages"][0]["content"]
    assert "Ты — помощник, который знакомит людей из IT" in system
    assert "Сохранённый профиль: пока нет." in system
    assert {tool["function"]["name"] for tool in first["tools"]} == {"save_profile", "get_profile"}
    profile_read = third["messages"][-1]["content"]
    assert "Сохранённый профиль (состояние: onboarding: ещё не заполнен):" in profile_read
    assert "location: Берлин" in profile_read


def test_a_change_of_an_active_profile_asks_to_confirm_and_reembeds_only_a_new_matching_summary(
    alpha, fake_llm, fake_telegram
):
    complete_profile_in_conversation(fake_llm, alpha, 101, PYTHON_SEEKER, "Python dev here.", "Remote please.")
    press(alpha, 101, "match:activate")
    profile = Profile.objects.get(chat__telegram_chat_id=101)
    first_vector, first_embedded_at = list(profile.embedding), profile.embedded_at

    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"location": "Berlin", "complete": True}),
        llm_api.text("Done, your location is Berlin now."),
    )
    say(alpha, 101, "Change my location to Berlin")

    profile.refresh_from_db()
    assert (profile.location, profile.state) == ("Berlin", Profile.State.UPDATED)
    assert profile.embedded_at == first_embedded_at  # the matching summary did not change: same vector
    card = sent(fake_telegram, alpha, 101)[-2]
    assert "Location: Berlin" in card["text"]
    assert "Your profile has changed." in card["text"]
    assert buttons(card) == ["match:activate"]

    new_summary = "Senior Python developer (Django, FastAPI) looking for remote contract work."
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"matching_summary": new_summary, "complete": True}),
        llm_api.text("Updated."),
    )
    say(alpha, 101, "Actually I prefer contracts now, and I also know FastAPI.")
    profile.refresh_from_db()
    assert profile.embedded_text == new_summary
    assert list(profile.embedding) != first_vector
    assert profile.state == Profile.State.UPDATED

    press(alpha, 101, "match:activate")
    press(alpha, 101, "match:activate")
    profile.refresh_from_db()
    assert profile.state == Profile.State.ACTIVE
    toasts = [c.params.get("text") for c in fake_telegram.calls_to("answerCallbackQuery")]
    assert toasts[-2:] == ["Matching started", "You are already in matching."]


def test_start_matching_before_the_profile_is_complete_is_refused(alpha, fake_llm, fake_telegram):
    fake_llm.openai.push(llm_api.tool_call("save_profile", {"roles": "seeker", "complete": False}), llm_api.text("Ok"))
    say(alpha, 101, "Hi")

    press(alpha, 101, "match:activate")

    assert Profile.objects.get(chat__telegram_chat_id=101).state == Profile.State.ONBOARDING
    [toast] = [c.params.get("text") for c in fake_telegram.calls_to("answerCallbackQuery")]
    assert toast == "Your profile is not complete yet. Let's finish it first."


def test_start_with_a_profile_asks_before_wiping_it(alpha, fake_llm, fake_telegram, django_capture_on_commit_callbacks):
    complete_profile_in_conversation(fake_llm, alpha, 101, PYTHON_SEEKER, "Python dev here.", "Remote please.")
    press(alpha, 101, "match:activate")
    profile = Profile.objects.get(chat__telegram_chat_id=101)
    other_chat = Chat.objects.create(project=alpha, telegram_chat_id=555)
    other = Profile.objects.create(project=alpha, chat=other_chat, role="provider", state=Profile.State.ACTIVE)
    open_match = Match.objects.create(project=alpha, user_a=profile, user_b=other, round=1, status="qualified")

    with django_capture_on_commit_callbacks(execute=True):
        say(alpha, 101, "/start")
    question = sent(fake_telegram, alpha, 101)[-1]
    assert question["text"].startswith("You already have a profile. Do you want to delete it")
    assert buttons(question) == ["match:wipe:yes", "match:wipe:no"]
    assert Profile.objects.get(pk=profile.pk).state == Profile.State.ACTIVE  # nothing reset yet

    press(alpha, 101, "match:wipe:no")
    assert Profile.objects.get(pk=profile.pk).matching_summary == PYTHON_SEEKER["matching_summary"]

    with django_capture_on_commit_callbacks(execute=True):
        say(alpha, 101, "/start")
    press(alpha, 101, "match:wipe:yes")

    profile.refresh_from_db()
    assert (profile.state, profile.matching_summary, profile.private_observations) == ("onboarding", "", "")
    assert (profile.embedding, profile.embedding_model) == (None, "")
    assert Match.objects.get(pk=open_match.pk).status == Match.Status.REJECTED
    assert texts_to(fake_telegram, alpha, 101)[-1] == "Hi! Are you looking for work or for people?"
    toasts = [c.params.get("text") for c in fake_telegram.calls_to("answerCallbackQuery")]
    assert toasts[-2:] == ["Your profile is kept. Let's continue.", "Profile deleted"]

    with django_capture_on_commit_callbacks(execute=True):
        say(alpha, 101, "/start")  # no profile data any more: the engine's own reset and greeting
    assert texts_to(fake_telegram, alpha, 101)[-1] == "Hi! Are you looking for work or for people?"


def test_a_user_without_a_profile_gets_the_usual_greeting_and_sales_projects_are_untouched(
    alpha, fake_telegram, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        say(alpha, 101, "/start")
    assert texts_to(fake_telegram, alpha, 101) == ["Hi! Are you looking for work or for people?"]
    assert not Profile.objects.exists()
    assert json.dumps(sent(fake_telegram, alpha, 101)).count("match:") == 0
