"""The Telegram lead group CRM, through python-telegram-bot against the fake Bot API."""

from datetime import timedelta

import pytest

from bots import telegram_outbox
from leads.crm import CrmError, CrmPermanentError, crm_backends_for
from leads.crm.telegram_group import TelegramGroupCrm, media_parts
from leads.models import CrmWebhook
from tests.leads.test_transcript import (
    DOCUMENTS,
    PHOTOS,
    START,
    VIDEO,
    VIDEO_NOTE,
    VOICE,
    History,
    chat_history,
    file_ref,
    lead_with_history,
)

pytestmark = pytest.mark.django_db

GROUP_A = -1001111
GROUP_B = -1002222


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """The outbox policy's waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(telegram_outbox, "sleep", recorded.append)
    return recorded


@pytest.fixture
def fake(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    for project, group in ((project_a, GROUP_A), (project_b, GROUP_B)):
        project.lead_group_id = group
        project.save()
    return fake_telegram


def group_calls(fake, group: int = GROUP_A) -> list:
    """The posts to a group (not the getChat that asks whether it is a forum)."""
    return [call for call in fake.calls if call.params.get("chat_id") == group and call.method != "getChat"]


def test_a_lead_is_posted_as_forward_summary_transcript_and_grouped_files(fake, project_a):
    lead = lead_with_history(project_a, fake=fake)

    refs = TelegramGroupCrm(project_a).send(lead)

    calls = group_calls(fake)
    assert [call.method for call in calls] == [
        "forwardMessage", "sendMessage", "sendDocument", "sendMediaGroup", "sendMediaGroup", "sendVoice",
        "sendVideoNote",
    ]  # fmt: skip
    assert all(call.ok and call.token == project_a.bot_token for call in calls)
    forward, summary, transcript, album, documents, voice, video_note = calls
    # The customer's last message, from their private chat, so managers can open the profile.
    assert (forward.params["from_chat_id"], forward.params["message_id"]) == (
        501,
        lead.chat.messages.last().telegram_message_id,
    )
    assert summary.params["text"].startswith(f"Lead #{lead.pk}\nName: Anna\nCity: Berlin\nService: Window cleaning\n")
    assert "Shared contact: +491701234567 (Anna Schmidt)\nClient status: hot\nFiles: 8\n" in summary.params["text"]
    summary_id = refs["summary_message_id"]
    for reply in (transcript, album, documents, voice, video_note):
        assert reply.params["reply_parameters"]["message_id"] == summary_id
    document = transcript.files["document"]
    assert document.filename == f"lead{lead.pk}.txt"
    assert document.content.decode().startswith(f"Lead #{lead.pk}\n")
    assert "] Client: Berlin, call me at +49 170 1234567\n" in document.content.decode()
    assert [(item["type"], item["media"]) for item in album.params["media"]] == [
        *(("photo", photo["file_id"]) for photo in PHOTOS),
        ("video", VIDEO["file_id"]),
    ]
    assert [(item["type"], item["media"]) for item in documents.params["media"]] == [
        ("document", doc["file_id"]) for doc in DOCUMENTS
    ]
    assert voice.params["voice"] == VOICE["file_id"]
    assert video_note.params["video_note"] == VIDEO_NOTE["file_id"]
    assert refs == {
        "chat_id": GROUP_A,
        "forwarded_message_id": 1,
        "summary_message_id": 2,
        "transcript_message_id": 3,
        "media_message_ids": [4, 5, 6, 7, 8, 9, 10, 11],
        "media_parts_sent": 4,
    }


def test_a_chat_without_telegram_messages_posts_no_forward(fake, project_a):
    history = chat_history(project_a)
    history.client("Typed in the terminal")
    lead = history.chat.leads.create(project=project_a, summary="From the terminal chat.")
    lead.chat.messages.update(telegram_message_id=None)

    refs = TelegramGroupCrm(project_a).send(lead)

    assert [call.method for call in group_calls(fake)] == ["sendMessage", "sendDocument"]
    assert refs["forwarded_message_id"] is None
    assert refs["media_message_ids"] == []


def test_twelve_photos_go_as_an_album_of_ten_and_one_of_two(fake, project_a):
    photos = [file_ref("photo", n) for n in range(12)]
    lead = lead_with_history(project_a, fake=fake, files=photos)

    refs = TelegramGroupCrm(project_a).send(lead)

    albums = fake.calls_to("sendMediaGroup")
    assert [len(call.params["media"]) for call in albums] == [10, 2]
    assert [item["media"] for call in albums for item in call.params["media"]] == [p["file_id"] for p in photos]
    assert len(refs["media_message_ids"]) == 12


def test_a_lone_file_of_an_album_kind_is_sent_with_its_own_method(fake, project_a):
    files = [*(file_ref("photo", n) for n in range(11)), DOCUMENTS[0]]
    lead = lead_with_history(project_a, fake=fake, files=files)

    TelegramGroupCrm(project_a).send(lead)

    assert [len(call.params["media"]) for call in fake.calls_to("sendMediaGroup")] == [10]
    assert fake.calls_to("sendPhoto")[0].params["photo"] == "photo-file-10"
    [document] = [call for call in fake.calls_to("sendDocument") if "document" not in call.files]
    assert document.params["document"] == DOCUMENTS[0]["file_id"]


def test_media_parts_order_and_unusable_files():
    audio = file_ref("audio", 1, file_name="a.mp3")
    parts = media_parts([VOICE, DOCUMENTS[0], PHOTOS[0], {"kind": "location"}, audio, VIDEO, {"kind": "photo"}])

    assert parts == [[PHOTOS[0], VIDEO], [DOCUMENTS[0]], [VOICE], [audio]]


def test_refresh_reuploads_the_transcript_and_adds_the_footer(fake, project_a):
    lead = lead_with_history(project_a, fake=fake)
    refs = TelegramGroupCrm(project_a).send(lead)
    history = History(project=project_a, chat=lead.chat, minute=20)
    history.client("One more thing: I also have a balcony door")

    new_refs = TelegramGroupCrm(project_a).refresh(lead, refs)

    [media_edit] = fake.calls_to("editMessageMedia")
    assert (media_edit.params["chat_id"], media_edit.params["message_id"]) == (GROUP_A, refs["transcript_message_id"])
    assert media_edit.params["media"]["type"] == "document"
    uploaded = media_edit.params["media"]["media"]
    assert uploaded.filename == f"lead{lead.pk}.txt"
    assert "] Client: One more thing: I also have a balcony door\n" in uploaded.content.decode()
    [text_edit] = fake.calls_to("editMessageText")
    assert text_edit.params["message_id"] == refs["summary_message_id"]
    updated = (START + timedelta(minutes=21)).strftime("%Y-%m-%d %H:%M")
    assert text_edit.params["text"].endswith(f"\n\nhistory updated: {updated}")
    assert text_edit.params["text"].startswith(fake.calls_to("sendMessage")[0].params["text"])
    assert all(call.ok for call in fake.calls)
    assert {k: v for k, v in new_refs.items() if k != "refreshed_at"} == refs
    assert not fake.calls_to("sendMessage", token=project_a.bot_token)[1:]  # nothing new was posted


def test_a_repeated_refresh_with_nothing_new_is_fine(fake, project_a):
    lead = lead_with_history(project_a, fake=fake)
    refs = TelegramGroupCrm(project_a).send(lead)
    TelegramGroupCrm(project_a).refresh(lead, refs)

    TelegramGroupCrm(project_a).refresh(lead, refs)  # Telegram answers "message is not modified": ignored

    assert [call.failed_status for call in fake.calls_to("editMessageText")] == [None, 400]


def test_refresh_of_a_deleted_post_is_permanent(fake, project_a):
    lead = lead_with_history(project_a, fake=fake)
    refs = TelegramGroupCrm(project_a).send(lead)
    fake.fail_next("editMessageText", status=400, description="Bad Request: message to edit not found")

    with pytest.raises(CrmPermanentError, match=r"(?i)message to edit not found"):
        TelegramGroupCrm(project_a).refresh(lead, refs)


def test_no_lead_group_is_permanent_and_sends_nothing(fake, project_a):
    project_a.lead_group_id = None
    project_a.save()
    lead = lead_with_history(project_a, fake=fake)

    with pytest.raises(CrmPermanentError, match="no lead group"):
        TelegramGroupCrm(project_a).send(lead)

    assert fake.calls == []
    assert crm_backends_for(project_a) == []


def test_a_bot_removed_from_the_group_is_permanent(fake, project_a):
    fake.block_chat(project_a.bot_token, GROUP_A)
    lead = lead_with_history(project_a, fake=fake)

    with pytest.raises(CrmPermanentError, match="cannot post to lead group"):
        TelegramGroupCrm(project_a).send(lead)

    # The forward may fail for the customer's sake; the refused summary proves the group is the problem.
    assert [(call.method, call.failed_status) for call in fake.calls] == [
        ("getChat", 403), ("forwardMessage", 403), ("sendMessage", 403),
    ]  # fmt: skip


def test_a_group_that_does_not_exist_is_permanent(fake, project_a):
    fake.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    lead = lead_with_history(project_a)

    with pytest.raises(CrmPermanentError, match=r"(?i)chat not found"):
        TelegramGroupCrm(project_a).send(lead)


def test_a_transient_failure_resumes_without_posting_anything_twice(fake, project_a, sleeps):
    fake.fail_next("sendMediaGroup", status=502, times=4)  # first album: the first try and both retries fail
    lead = lead_with_history(project_a, fake=fake)
    crm = TelegramGroupCrm(project_a)

    with pytest.raises(CrmError) as failure:
        crm.send(lead)

    assert not isinstance(failure.value, CrmPermanentError)
    assert failure.value.refs["summary_message_id"] == 2
    assert failure.value.refs["media_parts_sent"] == 0
    assert sleeps == [1.0, 3.0]

    refs = crm.send(lead, partial_refs=failure.value.refs)

    ok = [call.method for call in group_calls(fake) if call.ok]
    assert ok.count("forwardMessage") == ok.count("sendMessage") == ok.count("sendDocument") == 1
    assert ok.count("sendMediaGroup") == 2
    assert refs["media_parts_sent"] == 4
    assert len(refs["media_message_ids"]) == 8


def test_one_refused_file_is_skipped_and_noted_not_failing_the_lead(fake, project_a):
    fake.fail_next("sendVoice", status=400, description="Bad Request: wrong file identifier/HTTP URL specified")
    lead = lead_with_history(project_a, fake=fake)

    refs = TelegramGroupCrm(project_a).send(lead)

    assert fake.calls_to("sendVideoNote")[0].ok
    assert refs["media_parts_sent"] == 4
    assert len(refs["media_message_ids"]) == 7
    assert "wrong file identifier" in refs["skipped"][0].lower()


def test_a_refused_forward_does_not_cost_the_lead(fake, project_a):
    fake.fail_next("forwardMessage", status=403, description="Forbidden: bot was blocked by the user")
    lead = lead_with_history(project_a, fake=fake)

    refs = TelegramGroupCrm(project_a).send(lead)

    assert refs["forwarded_message_id"] is None
    assert "blocked" in refs["skipped"][0]
    assert refs["summary_message_id"] == 1
    assert refs["media_parts_sent"] == 4


def test_another_projects_lead_never_reaches_this_projects_group(fake, project_a, project_b):
    lead_b = lead_with_history(project_b, fake=fake)

    [backend] = crm_backends_for(project_b)
    backend.send(lead_b)
    with pytest.raises(CrmPermanentError, match="does not belong"):
        TelegramGroupCrm(project_a).send(lead_b)

    assert group_calls(fake, GROUP_A) == []
    # Only these two bots' calls: a worker of an earlier test may still be finishing its own.
    ours = [call for call in fake.calls if call.token in {project_a.bot_token, project_b.bot_token}]
    assert {call.params["chat_id"] for call in ours} == {GROUP_B}
    assert {call.token for call in ours} == {project_b.bot_token}


def test_backends_of_a_project(fake, project_a, project_b):
    first = CrmWebhook.objects.create(project=project_a, url="https://crm.example/a", secret="s1")
    CrmWebhook.objects.create(project=project_a, url="https://crm.example/off", secret="s2", is_active=False)
    CrmWebhook.objects.create(project=project_b, url="https://crm.example/b", secret="s3")

    names = [backend.name for backend in crm_backends_for(project_a)]

    assert names == ["telegram_group", f"webhook:{first.pk}"]


def test_a_russian_project_gets_russian_labels(fake, project_b):
    lead = lead_with_history(project_b, fake=fake)

    TelegramGroupCrm(project_b).send(lead)

    text = fake.calls_to("sendMessage")[0].params["text"]
    assert f"Заявка #{lead.pk}\nИмя: Anna\nГород: Berlin" in text
    assert "Статус клиента: hot" in text
