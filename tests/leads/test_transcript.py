"""The lead transcript and summary post: content, order, time zone, language, and tenant scoping.

The builders at the top (a chat with a realistic history, and its lead) are shared with the CRM tests.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bots.models import Chat, Message, Turn
from leads.models import Lead
from leads.transcript import history_updated_at, lead_summary_text, lead_transcript
from tenants.models import Project
from tests.telegram_updates import message_update

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SHARED_CONTACT = {"phone_number": "+491701234567", "first_name": "Anna", "last_name": "Schmidt", "user_id": 501}


def file_ref(kind: str, n: int, *, file_name: str = "", mime_type: str = "") -> dict[str, Any]:
    return {
        "kind": kind,
        "file_id": f"{kind}-file-{n}",
        "file_unique_id": f"u-{kind}-{n}",
        "file_name": file_name,
        "mime_type": mime_type,
        "file_size": 1000 + n,
    }


PHOTOS = [file_ref("photo", n) for n in (1, 2, 3)]
VIDEO = file_ref("video", 1, file_name="room.mp4", mime_type="video/mp4")
DOCUMENTS = [
    file_ref("document", 1, file_name="plan.pdf", mime_type="application/pdf"),
    file_ref("document", 2, file_name="quote.docx", mime_type="application/msword"),
]
VOICE = file_ref("voice", 1, mime_type="audio/ogg")
VIDEO_NOTE = file_ref("video_note", 1)
ALL_FILES = [*PHOTOS, VIDEO, *DOCUMENTS, VOICE, VIDEO_NOTE]


@dataclass
class History:
    """A chat whose messages the fake Telegram also knows (so forwards carry their content)."""

    project: Project
    chat: Chat
    fake: Any = None  # the fake Bot API, or None when nothing needs to be forwarded
    minute: int = 0
    messages: list[Message] = field(default_factory=list)

    def at(self) -> datetime:
        self.minute += 1
        return START + timedelta(minutes=self.minute)

    def client(self, text: str = "", *, files: list[dict[str, Any]] | None = None) -> Message:
        update = message_update(self.chat.telegram_chat_id, **({"text": text} if text else {"caption": "file"}))
        if self.fake is not None:
            self.fake.push_update(self.project.bot_token, update)
        message = Message.objects.create(
            project=self.project,
            chat=self.chat,
            telegram_message_id=update["message"]["message_id"],
            text=text,
            files=files or [],
        )
        Message.objects.filter(pk=message.pk).update(created_at=self.at())
        message.refresh_from_db()
        self.messages.append(message)
        return message

    def bot(self, reply: str, *, status: str = Turn.Status.SENT) -> Turn:
        turn = Turn.objects.create(project=self.project, chat=self.chat, status=status, reply=reply)
        moment = self.at()
        Turn.objects.filter(pk=turn.pk).update(created_at=moment, finished_at=moment)
        turn.refresh_from_db()
        return turn


def chat_history(project: Project, *, telegram_chat_id: int = 501, fake: Any = None) -> History:
    chat = Chat.objects.create(
        project=project, telegram_chat_id=telegram_chat_id, username="anna", first_name="Anna", last_name="Schmidt"
    )
    return History(project=project, chat=chat, fake=fake)


def lead_with_history(project: Project, *, telegram_chat_id: int = 501, fake: Any = None, **fields: Any) -> Lead:
    """A lead whose chat has text, 3 photos, a video, 2 documents, a voice message and a video note."""
    history = chat_history(project, telegram_chat_id=telegram_chat_id, fake=fake)
    history.client("Hello, I need my windows cleaned")
    history.bot("Sure! Could you send photos of the windows?")
    for photo in PHOTOS:
        history.client(files=[photo])
    history.client(files=[VIDEO])
    history.client("Here are the plan and the old quote", files=DOCUMENTS)
    history.bot("Thanks, got them. Where are you located?")
    history.client(files=[VOICE])
    history.client(files=[VIDEO_NOTE])
    history.bot("Never delivered", status=Turn.Status.FAILED)
    history.client("Berlin, call me at +49 170 1234567")
    history.bot("Great, a manager will call you today.")
    values = {
        "summary": "Anna wants her apartment windows cleaned this week; 3 rooms, plan attached.",
        "notes": "name: Anna\ncity: Berlin",
        "client_status": "hot",
        "name": "Anna",
        "city": "Berlin",
        "service": "Window cleaning",
        "contact": "phone +49 170 1234567",
        "shared_contact": SHARED_CONTACT,
        "files": ALL_FILES,
    }
    return Lead.objects.create(project=project, chat=history.chat, **(values | fields))


# --------------------------------------------------------------------- tests

pytestmark = pytest.mark.django_db


def test_transcript_is_chronological_with_local_times_and_file_markers(project_a):
    project_a.timezone = "Europe/Berlin"  # 09:00 UTC is 10:00 in Berlin in March
    project_a.save()
    lead = lead_with_history(project_a)

    transcript = lead_transcript(lead)

    assert transcript.splitlines()[:3] == [f"Lead #{lead.pk}", "Telegram: @anna Anna Schmidt (id 501)", ""]
    assert transcript.splitlines()[3:] == [
        "[2025-03-01 10:01] Client: Hello, I need my windows cleaned",
        "[2025-03-01 10:02] Bot: Sure! Could you send photos of the windows?",
        "[2025-03-01 10:03] Client: [photo]",
        "[2025-03-01 10:04] Client: [photo]",
        "[2025-03-01 10:05] Client: [photo]",
        "[2025-03-01 10:06] Client: [video 'room.mp4']",
        "[2025-03-01 10:07] Client: Here are the plan and the old quote",
        "    [document 'plan.pdf']",
        "    [document 'quote.docx']",
        "[2025-03-01 10:08] Bot: Thanks, got them. Where are you located?",
        "[2025-03-01 10:09] Client: [voice message]",
        "[2025-03-01 10:10] Client: [video note]",
        # 10:11: a reply that failed to send never reached the customer and is left out
        "[2025-03-01 10:12] Client: Berlin, call me at +49 170 1234567",
        "[2025-03-01 10:13] Bot: Great, a manager will call you today.",
    ]


def test_transcript_keeps_to_the_leads_own_chat_and_project(project_a, project_b):
    lead = lead_with_history(project_a)
    other_chat = chat_history(project_a, telegram_chat_id=777)
    other_chat.client("A different customer of Alpha")
    other_tenant = chat_history(project_b, telegram_chat_id=501)  # same Telegram user, another project
    other_tenant.client("Сообщение для Beta")
    other_tenant.bot("Ответ Beta")

    transcript = lead_transcript(lead)

    assert "Hello, I need my windows cleaned" in transcript
    assert "A different customer" not in transcript
    assert "Beta" not in transcript


def test_a_reply_at_the_same_minute_follows_the_message_it_answers(project_a):
    history = chat_history(project_a)
    turn = history.bot("Hi Anna!")
    message = history.client("Hi")
    Message.objects.filter(pk=message.pk).update(created_at=turn.finished_at)  # same instant
    lead = Lead.objects.create(project=project_a, chat=history.chat, summary="s")

    lines = lead_transcript(lead).splitlines()[3:]

    assert [line.split("] ", 1)[1] for line in lines] == ["Client: Hi", "Bot: Hi Anna!"]


def test_summary_lists_the_fields_then_the_agents_summary(project_a):
    lead = lead_with_history(project_a)

    text = lead_summary_text(lead)

    assert text == (
        f"Lead #{lead.pk}\n"
        "Name: Anna\n"
        "City: Berlin\n"
        "Service: Window cleaning\n"
        "Contact: phone +49 170 1234567\n"
        "Shared contact: +491701234567 (Anna Schmidt)\n"
        "Client status: hot\n"
        "Files: 8\n"
        "\n"
        "Anna wants her apartment windows cleaned this week; 3 rooms, plan attached."
    )


def test_summary_without_shared_contact_or_details_shows_dashes(project_a):
    history = chat_history(project_a)
    lead = Lead.objects.create(project=project_a, chat=history.chat, summary="Asked about prices only.")

    text = lead_summary_text(lead)

    assert "Shared contact" not in text
    assert "Name: —\nCity: —" in text
    assert "Files: 0" in text


def test_summary_footer_shows_the_update_time_in_the_project_zone(project_a):
    project_a.timezone = "Asia/Novosibirsk"  # UTC+7
    project_a.save()
    lead = lead_with_history(project_a)

    text = lead_summary_text(lead, updated_at=datetime(2025, 3, 2, 20, 30, tzinfo=UTC))

    assert text.startswith(lead_summary_text(lead))  # the summary stays as posted; only the footer is added
    assert text.endswith("\n\nhistory updated: 2025-03-03 03:30")


def test_history_updated_at_is_the_newest_message_or_reply(project_a):
    lead = lead_with_history(project_a)

    assert history_updated_at(lead) == START + timedelta(minutes=13)


def test_a_huge_summary_is_cut_to_fit_one_telegram_message(project_a):
    lead = lead_with_history(project_a, summary="word " * 2000)

    text = lead_summary_text(lead, updated_at=START)

    assert len(text) <= 4096
    assert text.endswith("history updated: 2025-03-01 09:00")
    assert "…" in text


def test_an_unknown_time_zone_falls_back_to_utc(project_a, caplog):
    project_a.timezone = "Mars/Olympus"
    lead = lead_with_history(project_a)

    assert "[2025-03-01 09:01] Client: Hello" in lead_transcript(lead)
    assert "unknown time zone" in caplog.text


def test_rendering_in_one_language_does_not_leak_into_the_next(project_a, project_b):
    lead_b = lead_with_history(project_b)
    lead_a = lead_with_history(project_a, telegram_chat_id=502)

    lead_summary_text(lead_b, updated_at=START)
    lead_transcript(lead_b)

    assert lead_summary_text(lead_a).startswith(f"Lead #{lead_a.pk}\nName: Anna")
    assert "] Client: Hello" in lead_transcript(lead_a)


def test_russian_labels(project_b):
    lead = lead_with_history(project_b)

    summary, transcript = lead_summary_text(lead, updated_at=START), lead_transcript(lead)

    assert "Имя: Anna" in summary
    assert "Город: Berlin" in summary
    assert "история обновлена: 2025-03-01 09:00" in summary
    assert "Клиент: Hello" in transcript
    assert "[фото]" in transcript


def test_a_transcribed_voice_message_reads_as_its_words_and_stays_a_file(project_a):
    history = chat_history(project_a)
    voice = history.client(files=[VOICE | {"duration": 12}])
    Message.objects.filter(pk=voice.pk).update(
        transcription={"status": "done", "text": "Do you clean windows on Saturdays?", "seconds": 11.6}
    )
    history.client(files=[VIDEO_NOTE | {"duration": 5}])  # not transcribed: a marker only
    lead = Lead.objects.create(project=project_a, chat=history.chat, files=[VOICE, VIDEO_NOTE])

    text = lead_transcript(lead)

    assert "Client: [voice message 0:12] Do you clean windows on Saturdays?" in text
    assert "Client: [video note]\n" in text
    assert "Files: 2" in lead_summary_text(lead)
