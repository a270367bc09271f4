"""Voice messages and video notes end to end: webhook -> real worker -> getFile + download from the fake
Telegram -> /audio/transcriptions on the fake LLM -> the transcript is the user's text for the turn."""

import time
from decimal import Decimal

import pytest
from django.urls import reverse

from bots.llm.pricing import model_prices_ensure
from bots.models import LLMCall, Message, Turn
from bots.texts import FILE_RECEIVED, VOICE_NOT_TRANSCRIBED, in_language
from tenants.models import Membership
from tests.audio import wav_tone
from tests.bots.test_engine_integration import replies, send, wait_until
from tests.factories import MembershipFactory
from tests.fakes import llm_api
from tests.telegram_updates import message_update, text_update

pytestmark = pytest.mark.django_db(transaction=True)

SAID = "Hello, how much is window cleaning for a flat of three rooms?"


@pytest.fixture
def bots(fake_telegram, project_a, project_b):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    fake_telegram.register_bot(project_b.bot_token, "beta_bot")
    model_prices_ensure()  # a transactional test starts from an emptied database: load the maintained prices
    project_a.model_transcription = "openai/whisper-1"
    project_a.save(update_fields=["model_transcription"])
    return project_a, project_b


def voice_update(fake_telegram, chat_id: int, audio: bytes, *, kind: str = "voice", seconds: int, **fields):
    file_id = f"{kind}-{chat_id}-{len(audio)}"
    fake_telegram.add_file(file_id, audio, f"{kind}/{file_id}.oga")
    attachment = {"file_id": file_id, "file_unique_id": f"u{file_id}", "duration": seconds, "file_size": len(audio)}
    if kind == "voice":
        attachment["mime_type"] = "audio/ogg"
    else:
        attachment["length"] = 240
    return message_update(chat_id, **{kind: attachment}, **fields)


def chat_requests(fake_llm) -> list[str]:
    """The user texts of every chat-completions request the model got."""
    return [m["content"] for r in fake_llm.requests_to("openai") for m in r.body["messages"] if m["role"] == "user"]


def test_a_voice_message_reaches_the_model_as_its_transcript_and_is_costed(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, project_b = bots
    audio = wav_tone(seconds=2.5)
    fake_llm.transcriptions.set(audio, SAID)
    fake_llm.openai.push(llm_api.text("A three-room flat is about 90 EUR."))
    send(client, project_a, voice_update(fake_telegram, 111, audio, seconds=3))
    # The other tenant has no transcription model: its voice message is acknowledged, as any file.
    send(client, project_b, voice_update(fake_telegram, 222, wav_tone(seconds=1.0), seconds=1))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=60)
    fake_telegram.wait_for("sendMessage", token=project_b.bot_token, timeout=60)
    time.sleep(1.0)  # nothing more may follow

    [upload] = fake_llm.requests_to("transcriptions")
    assert upload.upload == audio  # the bytes downloaded from Telegram, sent as the multipart file
    assert (upload.body["model"], upload.body["response_format"]) == ("whisper-1", "verbose_json")
    assert upload.body["file"]["filename"] == f"voice-111-{len(audio)}.oga"  # named as Telegram stores it
    [request] = fake_llm.requests_to("openai")
    [user_text] = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
    assert user_text == f"[voice message 0:03, transcribed] {SAID}"
    assert replies(fake_telegram, project_a, 111) == ["A three-room flat is about 90 EUR."]
    assert replies(fake_telegram, project_b, 222) == [in_language(project_b, FILE_RECEIVED)]

    message = Message.objects.get(chat__telegram_chat_id=111)
    assert message.transcription["status"] == "done"
    assert message.transcription["text"] == SAID
    assert message.files[0]["file_id"] == "voice-111-" + str(len(audio))  # the recording stays a file
    assert message.turn.user_text == user_text  # kept in the history the next turns replay
    [call] = LLMCall.objects.filter(project=project_a, method="transcribe")
    assert (call.model, call.status, call.purpose) == ("openai/whisper-1", "ok", "transcription")
    assert call.cost_usd == Decimal("0.000250")  # 2.5 s at $0.006 per minute
    assert call.generation_id == message.turn.generation_id
    assert not LLMCall.objects.filter(project=project_b, method="transcribe").exists()
    assert Message.objects.get(chat__telegram_chat_id=222).transcription is None


def test_a_video_note_with_a_json_only_model_is_transcribed_too(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    project_a.model_transcription = "openai/gpt-4o-mini-transcribe"
    project_a.save(update_fields=["model_transcription"])
    audio = wav_tone(seconds=4.0, frequency=300)
    fake_llm.transcriptions.set(audio, "Can you come on Friday?")
    fake_llm.openai.push(llm_api.text("Yes, Friday works."))
    send(client, project_a, voice_update(fake_telegram, 111, audio, kind="video_note", seconds=4))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=60)

    [upload] = fake_llm.requests_to("transcriptions")
    assert (upload.body["model"], upload.body["response_format"]) == ("gpt-4o-mini-transcribe", "json")
    assert chat_requests(fake_llm) == ["[video note 0:04, transcribed] Can you come on Friday?"]
    [call] = LLMCall.objects.filter(method="transcribe")
    assert call.cost_usd == Decimal("0.000200")  # Telegram's 4 s at $0.003 per minute (json has no duration)


def test_without_a_transcription_model_a_voice_message_is_acknowledged_as_before(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    project_a.model_transcription = ""
    project_a.save(update_fields=["model_transcription"])
    send(client, project_a, voice_update(fake_telegram, 111, wav_tone(seconds=1.0), seconds=1))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=60)
    time.sleep(1.0)

    assert replies(fake_telegram, project_a, 111) == [in_language(project_a, FILE_RECEIVED)]
    assert not fake_llm.requests
    message = Message.objects.get()
    assert (message.needs_reply, message.transcription) == (False, None)


def test_when_transcription_fails_the_user_is_told_and_nothing_is_lost(
    client, bots, fake_telegram, fake_llm, celery_worker
):
    project_a, _ = bots
    fake_llm.fail_all("transcriptions", 503)
    fake_llm.openai.push(llm_api.text("Sure, we clean windows every weekday."))
    send(client, project_a, voice_update(fake_telegram, 111, wav_tone(seconds=1.5), seconds=2))
    send(client, project_a, text_update(111, "Do you clean windows?"))
    fake_telegram.wait_for("sendMessage", count=2, token=project_a.bot_token, timeout=90)
    time.sleep(1.0)

    # Told at once, and the text of the same burst still got its answer from the model.
    assert replies(fake_telegram, project_a, 111) == [
        in_language(project_a, VOICE_NOT_TRANSCRIBED),
        "Sure, we clean windows every weekday.",
    ]
    assert chat_requests(fake_llm) == ["Do you clean windows?"]
    voice = Message.objects.get(text="")
    assert voice.transcription["status"] == "failed"
    assert "503" in voice.transcription["error"]
    assert voice.files
    assert voice.files[0]["kind"] == "voice"
    assert not voice.needs_reply
    failed = LLMCall.objects.filter(project=project_a, method="transcribe")
    assert failed.count() == 3
    assert set(failed.values_list("status", flat=True)) == {"error"}
    assert Turn.objects.filter(chat__telegram_chat_id=111, status="sent").count() == 2
    # The operator sees it on the conversation's page, with the reason.
    client.force_login(MembershipFactory(project=project_a, role=Membership.Role.OPERATOR).user)
    page = client.get(reverse("admin:bots_chat_change", args=[voice.chat_id])).content.decode()
    assert 'data-transcription="failed"' in page
    assert "not transcribed" in page

    # The provider is back: the next voice message is transcribed and answered.
    fake_llm.recover("transcriptions")
    audio = wav_tone(seconds=1.0, frequency=600)
    fake_llm.transcriptions.set(audio, "And on Saturdays?")
    fake_llm.openai.push(llm_api.text("Saturdays too."))
    send(client, project_a, voice_update(fake_telegram, 111, audio, seconds=1))
    fake_telegram.wait_for("sendMessage", count=3, token=project_a.bot_token, timeout=60)
    assert replies(fake_telegram, project_a, 111)[-1] == "Saturdays too."
    assert chat_requests(fake_llm)[-1] == "[voice message 0:01, transcribed] And on Saturdays?"


def test_a_recording_over_the_cap_is_not_sent_for_transcription(client, bots, fake_telegram, fake_llm, celery_worker):
    project_a, _ = bots
    fake_llm.openai.push(llm_api.text("That is a long message! Could you write the main point?"))
    send(client, project_a, voice_update(fake_telegram, 111, wav_tone(seconds=0.5), seconds=3600))
    fake_telegram.wait_for("sendMessage", token=project_a.bot_token, timeout=60)

    assert not fake_llm.requests_to("transcriptions")
    assert chat_requests(fake_llm) == ["[the user sent a voice message of 60:00, too long to transcribe]"]
    wait_until(lambda: Message.objects.get().transcription["status"] == "too_long", what="stored outcome")
