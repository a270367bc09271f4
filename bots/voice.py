"""Voice messages and video notes become the user's text: transcribed on the worker before the turn.

The webhook only marks such a message `transcription = {"status": "pending"}` (and waiting for a reply) when
the project has a transcription model; the chat's turn generation transcribes it first
(`chat_turn_with_voice_async`), so the model reads `[voice message 0:12, transcribed] what was said` and
the turn, its history and the lead transcript keep that text. The recording itself stays a file of the
message (its Telegram file id), kept for the lead like any file.

- Longer than TRANSCRIPTION_MAX_SECONDS: not sent; the model learns the user sent a long recording.
- The project over its weekly cap: not transcribed (the turn answers with the "unavailable" text).
- Download or every transcription backend failed: the user is told (VOICE_NOT_TRANSCRIBED), the message
  and its file stay, marked failed with the error, logged with project and chat ids; the attempts are
  `LLMCall` rows with their errors. Other messages of the burst still get their turn.
A crash mid-transcription leaves the message pending; the recovered generation transcribes it again.
"""

import asyncio
import logging
import posixpath
from typing import Any

from django.conf import settings
from django.utils import timezone
from telegram.error import TelegramError

from bots.conversation import chat_turn_handle_async, turn_deliver_async
from bots.event_loop import in_db
from bots.generations import project_over_weekly_cap
from bots.llm.transcription import speech_file, transcribe_async, transcription_chain
from bots.llm.types import LLMError
from bots.models import Chat, Generation, Message, Turn
from bots.telegram_client import bot_for_token
from bots.texts import FILE_RECEIVED, VOICE_NOT_TRANSCRIBED, in_language
from core.log_redaction import redact

logger = logging.getLogger(__name__)

# Telegram lets bots download files up to 20 MB.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 60.0
DEFAULT_FILENAMES = {"voice": "voice.ogg", "video_note": "video_note.mp4", "audio": "audio.mp3"}
MAX_ERROR_CHARS = 1000
# Outcomes after which the recording alone waits for no model answer: the user is told at once instead.
NO_MODEL_ANSWER = ("failed", "off")


class DownloadFailed(RuntimeError):
    """The recording could not be fetched from Telegram."""


async def chat_turn_with_voice_async(generation: Generation) -> None:
    """The chat-turn generation handler: transcribe the chat's waiting recordings, then run the turn."""
    if generation.chat_id is not None:
        await voice_messages_transcribe_async(chat_id=generation.chat_id, generation_id=generation.pk)
    await chat_turn_handle_async(generation)


async def voice_messages_transcribe_async(*, chat_id: int, generation_id: int | None) -> int:
    """Transcribe every recording of the chat still waiting for it; returns how many were handled."""
    pending = await in_db(_pending, chat_id)
    for message in pending:
        chat = message.chat
        transcription = await _transcription_of(chat, message, generation_id)
        stored = await in_db(_store, chat, message, transcription)
        if stored and transcription["status"] in NO_MODEL_ANSWER:
            text = VOICE_NOT_TRANSCRIBED if transcription["status"] == "failed" else FILE_RECEIVED
            turn = await in_db(_system_reply_create, chat, text)
            await turn_deliver_async(turn=turn)
    return len(pending)


def _pending(chat_id: int) -> list[Message]:
    # On every turn, whether or not the chat sent a recording: a plain EXISTS first, so that a turn without
    # one does not build the join with the chat and its project (the rows come along only when needed).
    messages = Message.objects.filter(chat_id=chat_id, turn__isnull=True, transcription__status="pending")
    if not messages.exists():
        return []
    return list(messages.select_related("chat__project").order_by("pk"))


async def _transcription_of(chat: Chat, message: Message, generation_id: int | None) -> dict[str, Any]:
    project = chat.project
    file = speech_file(message.files)
    chain = await in_db(transcription_chain, project=project)
    if file is None or not chain:  # the file is gone or the model was unset since: answered as a plain file
        return {"status": "off"}
    declared = file.get("duration") or 0
    if declared > settings.TRANSCRIPTION_MAX_SECONDS:
        return {"status": "too_long", "seconds": declared}
    if await in_db(project_over_weekly_cap, project=project):
        return {"status": "paused", "error": "weekly cap reached"}
    try:
        audio, filename = await _download(chat, file)
        transcript = await transcribe_async(
            chain=chain, audio=audio, filename=filename, mime_type=file.get("mime_type") or "",
            declared_seconds=float(declared), project_id=project.pk, generation_id=generation_id,
        )  # fmt: skip
    except (DownloadFailed, LLMError) as exc:
        error = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        logger.error("voice message not transcribed: %s", error, extra=_log_extra(chat, message))
        return {"status": "failed", "error": error}
    logger.info("voice message transcribed", extra=_log_extra(chat, message, seconds=transcript.seconds))
    return {
        "status": "done", "text": transcript.text, "seconds": transcript.seconds, "model": transcript.model,
        "cost_usd": str(transcript.cost_usd),
    }  # fmt: skip


async def _download(chat: Chat, file: dict[str, Any]) -> tuple[bytes, str]:
    """The recording's bytes and a file name whose extension tells the endpoint its format."""
    if (file.get("file_size") or 0) > MAX_DOWNLOAD_BYTES:
        raise DownloadFailed(f"{file['file_size']} bytes, more than Telegram lets bots download")
    bot = bot_for_token(chat.project.bot_token)
    try:
        async with asyncio.timeout(DOWNLOAD_TIMEOUT_SECONDS):
            telegram_file = await bot.get_file(file["file_id"])
            if (telegram_file.file_size or 0) > MAX_DOWNLOAD_BYTES:
                raise DownloadFailed(f"{telegram_file.file_size} bytes, more than Telegram lets bots download")
            data = bytes(await telegram_file.download_as_bytearray())
    except (TelegramError, TimeoutError, OSError) as exc:
        raise DownloadFailed(f"download from Telegram failed: {type(exc).__name__}: {exc}") from exc
    name = posixpath.basename(telegram_file.file_path or "") or file.get("file_name") or ""
    if "." not in name:
        name = DEFAULT_FILENAMES.get(file.get("kind", ""), "audio.ogg")
    return data, name


def _store(chat: Chat, message: Message, transcription: dict[str, Any]) -> bool:
    """Keep the outcome on the message; a failed recording without text waits for no model answer."""
    transcription = {**transcription, "at": timezone.now().isoformat()}
    fields: dict[str, Any] = {"transcription": transcription}
    if transcription["status"] in NO_MODEL_ANSWER and not message.text.strip() and not message.contact:
        # Told (failed) or acknowledged as any file (off): nothing is left for the model to answer.
        fields["needs_reply"] = False
    # Conditional: a message a turn took meanwhile (or a /start reset) is not rewritten.
    updated = Message.objects.filter(pk=message.pk, chat=chat, turn__isnull=True).update(**fields)
    message.transcription = transcription
    return bool(updated)


def _system_reply_create(chat: Chat, text: object) -> Turn:
    project = chat.project
    turn = Turn.objects.create(
        project_id=chat.project_id, chat=chat, trigger=Turn.Trigger.SYSTEM, status=Turn.Status.REPLY_READY,
        reply=in_language(project, text),
    )  # fmt: skip
    turn.chat, turn.project = chat, project  # the delivery coroutine never lazy-loads them
    return turn


def _log_extra(chat: Chat, message: Message, **more: Any) -> dict[str, Any]:
    return {"project_id": chat.project_id, "chat_id": chat.telegram_chat_id, "message_pk": message.pk, **more}
