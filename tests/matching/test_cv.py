"""CV intake: a document sent to the matching bot is downloaded, extracted, kept, and read by the agent."""

import io
import json

import docx
import pytest

from bots.models import Message
from matching.cv import MAX_CV_BYTES
from matching.models import CvDocument, Profile
from tests.fakes import llm_api
from tests.knowledge.test_extraction import make_pdf
from tests.matching.dialogue import say, send_document, texts_to

pytestmark = pytest.mark.django_db

CV_LINES = (
    "Maria Example - Senior Python Developer\n"
    "8 years of Python, Django, PostgreSQL and Celery\n"
    "Based in Porto, Portugal; wants remote full-time work\n"
    "Expected salary 5500 EUR per month"
)
FROM_CV = {
    "roles": "seeker",
    "summary": "Senior Python developer, 8 years of Django and PostgreSQL.",
    "location": "Porto, Portugal",
    "work_format": "remote, full-time",
    "rates": "5500 EUR/month",
    "matching_summary": "Senior Python backend developer (Django, PostgreSQL, Celery), 8 years, looking for remote "
    "full-time work.",
}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings


def model_inputs(fake_llm) -> list[str]:
    return [json.dumps(r.body["messages"], ensure_ascii=False) for r in fake_llm.requests_to("openai")]


def test_a_pdf_cv_fills_the_profile_and_the_agent_asks_one_question(alpha, beta, fake_llm, fake_telegram):
    # The model reads the CV, saves everything it says, and asks for the one thing missing (availability).
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {**FROM_CV, "complete": False}),
        llm_api.text("Thanks for the CV! One question: when could you start?"),
        llm_api.tool_call("save_profile", {"availability": "in two weeks", "complete": True}),
        llm_api.text("Perfect, check your card and press Start matching."),
    )
    send_document(alpha, fake_telegram, 501, make_pdf(CV_LINES), file_name="maria_cv.pdf", mime_type="application/pdf")

    [first_turn, *_] = model_inputs(fake_llm)
    assert "8 years of Python, Django, PostgreSQL and Celery" in first_turn  # the CV's text reached the agent
    assert "maria_cv.pdf" in first_turn
    questions = [t for t in texts_to(fake_telegram, alpha, 501) if "?" in t]
    assert questions == ["Thanks for the CV! One question: when could you start?"]

    say(alpha, 501, "In two weeks.")
    profile = Profile.objects.get(project=alpha, chat__telegram_chat_id=501)
    assert profile.state == Profile.State.READY  # complete after one question
    assert (profile.location, profile.rates, profile.availability) == ("Porto, Portugal", "5500 EUR/month",
                                                                       "in two weeks")  # fmt: skip
    cv = CvDocument.objects.get(profile=profile)
    assert (cv.project, cv.file_name, cv.mime_type) == (alpha, "maria_cv.pdf", "application/pdf")
    assert "Senior Python Developer" in cv.text
    with cv.file.open("rb") as stored:
        assert stored.read().startswith(b"%PDF-")
    # The other tenant saw nothing of it.
    assert not CvDocument.objects.filter(project=beta).exists()
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


def test_a_docx_cv_with_a_caption_goes_to_the_agent_in_one_turn(beta, fake_llm, fake_telegram):
    document = docx.Document()
    document.add_paragraph("Иван, тестировщик, 5 лет автоматизации на Python и Selenium")
    buffer = io.BytesIO()
    document.save(buffer)
    fake_llm.openai.push(llm_api.text("Спасибо! Какой формат работы вам удобен?"))

    send_document(
        beta, fake_telegram, 601, buffer.getvalue(), file_name="cv.docx", caption="Моё резюме",
        mime_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )  # fmt: skip

    [turn] = model_inputs(fake_llm)
    assert "Моё резюме" in turn
    assert "автоматизации на Python и Selenium" in turn
    assert "Резюме" in turn or "резюме" in turn  # the CV note is in the project's language
    assert CvDocument.objects.filter(project=beta, profile__chat__telegram_chat_id=601).count() == 1


@pytest.mark.parametrize(
    ("content", "file_name", "mime_type", "declared", "expected"),
    [
        (b"x" * 100, "cv.pdf", "application/pdf", MAX_CV_BYTES + 1, "too large"),
        (b"%PDF-1.4 broken beyond repair", "cv.pdf", "application/pdf", None, "could not read this file"),
        (b"\x89PNG\r\n\x1a\n....", "photo.png", "image/png", None, "as PDF, DOCX or TXT files"),
        (b"", "empty.txt", "text/plain", None, "could not read this file"),
    ],
)
def test_a_broken_oversized_or_foreign_file_gets_a_clear_answer_and_changes_nothing(
    alpha, fake_llm, fake_telegram, content, file_name, mime_type, declared, expected
):
    send_document(alpha, fake_telegram, 502, content, file_name=file_name, mime_type=mime_type, declared_size=declared)

    answers = texts_to(fake_telegram, alpha, 502)
    assert any(expected in text for text in answers), answers
    assert not CvDocument.objects.exists()
    assert not fake_llm.requests_to("openai")  # no turn was spent on it
    assert not Message.objects.filter(chat__telegram_chat_id=502, needs_reply=True, turn__isnull=True).exists()


def test_an_oversized_file_is_refused_before_it_is_downloaded(alpha, fake_llm, fake_telegram):
    send_document(alpha, fake_telegram, 503, b"%PDF-1.4", file_name="big.pdf", mime_type="application/pdf",
                  declared_size=20 * MAX_CV_BYTES)  # fmt: skip
    assert not fake_telegram.calls_to("getFile", token=alpha.bot_token)
    assert any("too large" in text for text in texts_to(fake_telegram, alpha, 503))


def test_a_plain_text_cv_updates_an_existing_profile(alpha, fake_llm, fake_telegram):
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"roles": "seeker", "summary": "QA engineer.", "complete": False}),
        llm_api.text("Got it. Which city are you in?"),
    )
    say(alpha, 504, "Hi, I test software.")
    fake_llm.openai.push(
        llm_api.tool_call("save_profile", {"summary": "QA automation engineer, Playwright.", "complete": False}),
        llm_api.text("Thanks, I updated your profile from the CV. Which city are you in?"),
    )
    send_document(alpha, fake_telegram, 504, b"QA automation engineer, Playwright and pytest",
                  file_name="cv.txt", mime_type="text/plain")  # fmt: skip

    profile = Profile.objects.get(project=alpha, chat__telegram_chat_id=504)
    assert profile.summary == "QA automation engineer, Playwright."
    assert profile.cvs.count() == 1
    assert "Playwright and pytest" in model_inputs(fake_llm)[-1]
