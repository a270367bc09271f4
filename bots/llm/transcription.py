"""Speech to text over the transcription model slot: an OpenAI-compatible `/audio/transcriptions` endpoint.

The slot (`TRANSCRIPTION_MODEL`, or a project's `model_transcription`) is optional: unset, nothing is
transcribed. Set, it is a chain like the other slots (retries, fallbacks, one `LLMCall` per attempt with
method "transcribe"), priced per minute of audio (`ModelPrice.audio_per_minute`).
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from bots.llm.chain import AttemptResult, run_chain_async
from bots.llm.slots import InvalidModelId, ModelRef, resolve_chain
from bots.llm.types import CallContext, Usage
from tenants.models import Project

logger = logging.getLogger(__name__)

# Telegram's file kinds that carry speech.
SPEECH_KINDS = ("voice", "video_note", "audio")


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float  # of audio heard (billed)
    model: str  # provider/model that answered
    cost_usd: Decimal


def transcription_chain(*, project: Project) -> list[ModelRef]:
    """The project's transcription chain; empty when transcription is off (or misconfigured: logged)."""
    try:
        chain = resolve_chain(project=project, slot="transcription")
    except InvalidModelId as exc:
        logger.error("transcription model is not valid, voice messages are not transcribed: %s", exc,
                     extra={"project_id": project.pk})  # fmt: skip
        return []
    usable = [ref for ref in chain if ref.protocol == "openai"]
    if len(usable) != len(chain):
        logger.error("transcription needs OpenAI-compatible models; anthropic/... ignored",
                     extra={"project_id": project.pk})  # fmt: skip
    return usable


def speech_file(files: list[dict]) -> dict | None:
    """The message's voice message, video note or audio file, if it has one (a message carries one medium)."""
    return next((file for file in files if file.get("kind") in SPEECH_KINDS), None)


async def transcribe_async(
    *,
    chain: list[ModelRef],
    audio: bytes,
    filename: str,
    mime_type: str,
    declared_seconds: float,
    project_id: int,
    generation_id: int | None,
) -> Transcript:
    """Transcribe over the chain; raises AllBackendsFailed (or UnparseableOutput) when no backend did."""
    # The SDK import takes seconds; loaded on the first transcription, not at start-up.
    from bots.llm import openai_backend

    async def attempt(ref: ModelRef) -> AttemptResult[str]:
        text, seconds = await openai_backend.transcribe_async(
            ref=ref, audio=audio, filename=filename, mime_type=mime_type,
            timeout=float(settings.TRANSCRIPTION_TIMEOUT_SECONDS),
        )  # fmt: skip
        # Billed by the length of the audio: the server's figure when it gives one, else Telegram's.
        return AttemptResult(value=text, usage=Usage(audio_seconds=seconds or declared_seconds))

    context = CallContext(purpose="transcription", project_id=project_id, generation_id=generation_id)
    outcome = await run_chain_async(chain=chain, context=context, method="transcribe", attempt=attempt)
    return Transcript(
        text=outcome.value, seconds=outcome.usage.audio_seconds, model=outcome.ref.id, cost_usd=outcome.cost_usd
    )
