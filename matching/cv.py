"""CV intake: a PDF, DOCX or TXT document sent to the matching bot becomes profile material.

The engine's messages hook (`cv_documents_take`) sees the user's new messages inside the chat's processing
transaction. A document there is taken out of the turn that would answer it at once (the model would only
read "[the user sent a document]"), and read on the worker by `cv_read`: downloaded from Telegram (getFile),
checked, extracted with the knowledge base's extractors and kept on the profile. Its text then goes to the
agent as a new user message of the chat, through the engine's usual processing, so the agent fills the
profile from it and asks only what is missing. A file that is too large, of another type, or unreadable gets
a clear answer and changes nothing.
"""

import logging
import posixpath

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename
from django.utils.translation import override
from telegram.error import TelegramError

from bots.conversation import system_reply
from bots.event_loop import run_sync
from bots.models import Chat, Message
from bots.tasks import chat_process_task
from bots.telegram_client import bot_for_token
from bots.texts import in_language
from knowledge.extraction import ExtractionError, detect_kind, extract_document
from matching import texts
from matching.models import CvDocument
from matching.profiles import profile_get_or_create
from tenants.models import Project

logger = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_CV_BYTES = 5 * MB  # a CV is a few pages; Telegram lets bots download up to 20 MB
CV_KINDS = ("pdf", "docx", "txt")
CV_TEXT_LIMIT = 12_000  # characters of the CV given to the agent (about 3,000 tokens)
DOWNLOAD_TIMEOUT_SECONDS = 60
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")


def _document(message: Message) -> dict | None:
    return next((file for file in message.files if file.get("kind") == "document"), None)


def cv_documents_take(*, chat: Chat, messages: list[Message]) -> int:
    """Messages hook: queue every document for reading; its message waits for the CV's text."""
    from matching.tasks import cv_read_task  # the task module imports this module

    taken = [message for message in messages if _document(message) is not None]
    if not taken:
        return 0
    # The caption (if any) is answered together with the CV's text, not before it was read.
    Message.objects.filter(pk__in=[m.pk for m in taken]).update(needs_reply=False)
    for message in taken:
        transaction.on_commit(lambda message_id=message.pk: cv_read_task.delay(message_id))
    return len(taken)


class CvRefused(Exception):
    """The file cannot be used as a CV; the message is the answer for the user (already translated)."""


def cv_read(*, message_id: int) -> CvDocument | None:
    """Download, check and extract the CV of one message, keep it, and hand its text to the agent."""
    message = Message.objects.select_related("chat", "project").filter(pk=message_id).first()
    if message is None or message.project.kind != Project.Kind.MATCHING:
        return None
    document = _document(message)
    if document is None or CvDocument.objects.filter(source_message=message).exists():
        return None  # nothing to read, or read already (a redelivered task)
    project, chat = message.project, message.chat
    extra = {"project_id": project.pk, "chat_id": chat.telegram_chat_id, "message_id": message.pk}
    name = document.get("file_name") or "cv"
    try:
        data = _download(project=project, document=document)
        extracted = _extracted(project=project, data=data, document=document)
    except CvRefused as refused:
        logger.warning("CV refused: %s", refused, extra=extra)
        system_reply(chat=chat, text=str(refused))
        return None
    try:
        with transaction.atomic():
            profile = profile_get_or_create(project=project, chat=chat)
            cv = CvDocument(
                project=project, profile=profile, source_message=message, file_name=name[:255],
                mime_type=(document.get("mime_type") or "")[:100], size=len(data), text=extracted,
            )  # fmt: skip
            cv.file.save(get_valid_filename(posixpath.basename(name)) or "cv", ContentFile(data), save=False)
            cv.save()
            with override(project.language):
                intro = str(texts.CV_READ) % {"name": name}
            caption = message.text.strip()
            Message.objects.create(
                project=project, chat=chat,
                text="\n\n".join(part for part in (caption, intro, extracted[:CV_TEXT_LIMIT]) if part),
            )  # fmt: skip
            transaction.on_commit(lambda: _chat_process_later(chat.pk))
    except IntegrityError:
        return None  # a concurrent run of the same task kept it first
    logger.info("CV read", extra={**extra, "cv_id": cv.pk, "characters": len(extracted)})
    return cv


def _chat_process_later(chat_pk: int) -> None:
    chat_process_task.delay(chat_pk)


def _too_large(project: Project, size: int) -> CvRefused:
    with override(project.language):
        text = str(texts.CV_TOO_LARGE) % {"size": f"{size / MB:.1f}", "limit": MAX_CV_BYTES // MB}
    return CvRefused(text)


def _download(*, project: Project, document: dict) -> bytes:
    declared = document.get("file_size") or 0
    if declared > MAX_CV_BYTES:
        raise _too_large(project, declared)
    mime_type = (document.get("mime_type") or "").lower()
    kind = detect_kind(content_type=mime_type, url=document.get("file_name") or "", head=b"")
    # A generic type without a telling extension may still be a PDF by its bytes: that one is downloaded.
    if kind not in CV_KINDS and (kind is not None or mime_type not in GENERIC_TYPES):
        raise CvRefused(in_language(project, texts.CV_UNSUPPORTED))
    bot = bot_for_token(project.bot_token)

    async def fetch() -> bytes:
        file = await bot.get_file(document["file_id"])
        if file.file_size and file.file_size > MAX_CV_BYTES:
            raise _too_large(project, file.file_size)
        return bytes(await file.download_as_bytearray())

    try:
        data = run_sync(fetch(), timeout=DOWNLOAD_TIMEOUT_SECONDS)
    except (TelegramError, TimeoutError) as exc:
        logger.warning("CV download failed: %s", type(exc).__name__, extra={"project_id": project.pk})
        raise CvRefused(in_language(project, texts.CV_DOWNLOAD_FAILED)) from None
    if len(data) > MAX_CV_BYTES:
        raise _too_large(project, len(data))
    return data


def _extracted(*, project: Project, data: bytes, document: dict) -> str:
    try:
        extracted = extract_document(
            data=data, content_type=document.get("mime_type") or "", url=f"file:{document.get('file_name') or ''}"
        )
    except ExtractionError as exc:
        with override(project.language):
            raise CvRefused(str(texts.CV_UNREADABLE) % {"reason": str(exc)}) from None
    if extracted.kind not in CV_KINDS:
        raise CvRefused(in_language(project, texts.CV_UNSUPPORTED))
    return extracted.text
