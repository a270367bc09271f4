"""The project's Telegram lead group as a CRM: the lead is posted as a small thread of messages.

Order of a post: the customer's last message forwarded (managers click through to the profile), the
summary, the transcript as `lead<id>.txt` replying to the summary, then the files replying to it too:
photos and videos as albums, documents as albums, everything else one by one. Files are re-sent by
their Telegram `file_id`: the same bot received them, so nothing is downloaded.

Each part is recorded in the refs as soon as it is posted, and a failed attempt hands those refs back
in its CrmError: the retry resumes where it stopped instead of posting the lead twice.

In a forum group every part goes into the lead's own topic (`leads/topics.py`), created once per lead.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.utils import timezone
from telegram import InputFile, InputMediaDocument, InputMediaPhoto, InputMediaVideo, ReplyParameters

from bots.models import Chat, Message
from bots.telegram_outbox import ChatBlocked, PermanentSendError, SendError, call_with_policy
from leads.crm.base import CrmError, CrmPermanentError, ProgressHook, refuse_other_tenants
from leads.models import Lead
from leads.topics import lead_topic_gone, lead_topic_thread, thread_gone
from leads.transcript import history_updated_at, lead_summary_text, lead_transcript
from tenants.models import Project

logger = logging.getLogger(__name__)

BACKEND_NAME = "telegram_group"
ALBUM_SIZE = 10  # Telegram takes 2-10 items per media group
ALBUM_INPUTS: dict[str, Callable[..., Any]] = {
    "photo": InputMediaPhoto,
    "video": InputMediaVideo,
    "document": InputMediaDocument,
}
# Files sent one at a time; voice and video notes cannot be put in an album at all.
SINGLE_METHODS = {
    "photo": "send_photo",
    "video": "send_video",
    "document": "send_document",
    "voice": "send_voice",
    "video_note": "send_video_note",
    "audio": "send_audio",
    "animation": "send_animation",
    "sticker": "send_sticker",
}
_NOT_MODIFIED = "message is not modified"


class TelegramGroupCrm:
    """Posts a project's leads to its lead group (`Project.lead_group_id`) with the project's bot."""

    name = BACKEND_NAME

    def __init__(self, project: Project) -> None:
        self.project = project
        self._thread: dict[str, int] = {}  # message_thread_id of the lead's topic, while posting into it
        self._lead: Lead | None = None

    def send(
        self, lead: Lead, *, partial_refs: dict[str, Any] | None = None, on_progress: ProgressHook | None = None
    ) -> dict[str, Any]:
        refuse_other_tenants(project_id=self.project.pk, lead=lead, backend=self.name)
        group_id = self._group_id()
        refs = dict(partial_refs or {})
        if refs.get("chat_id") != group_id:  # nothing posted yet, or the group changed since: start over
            refs = {"chat_id": group_id}
        try:
            # A post begun in the general thread is finished there (the group may have become a forum since).
            begun_plain = len(refs) > 1 and "message_thread_id" not in refs
            thread_id = None if begun_plain else lead_topic_thread(project=self.project, lead=lead, group_id=group_id)
            self._thread, self._lead = ({"message_thread_id": thread_id} if thread_id else {}), lead
            if thread_id:
                refs["message_thread_id"] = thread_id
            self._post_parts(lead, group_id, refs, on_progress or (lambda refs: None))
        except CrmError as exc:
            exc.refs = refs
            raise
        logger.info("lead %s posted to the lead group", lead.pk, extra=self._log_extra(lead))
        return refs

    def refresh(self, lead: Lead, refs: dict[str, Any]) -> dict[str, Any]:
        refuse_other_tenants(project_id=self.project.pk, lead=lead, backend=self.name)
        group_id = refs.get("chat_id")
        if not group_id or not refs.get("summary_message_id"):
            raise CrmPermanentError(f"lead {lead.pk} has no post in a lead group to refresh")
        # The transcript first: if the edits stop half-way, the footer does not claim an update not made.
        if transcript_id := refs.get("transcript_message_id"):
            media = InputMediaDocument(media=_transcript_bytes(lead), filename=transcript_filename(lead))
            self._edit(group_id, "edit_message_media", message_id=transcript_id, media=media)
        text = lead_summary_text(lead, updated_at=history_updated_at(lead))
        self._edit(group_id, "edit_message_text", message_id=refs["summary_message_id"], text=text)
        logger.info("lead %s refreshed in the lead group", lead.pk, extra=self._log_extra(lead))
        return {**refs, "refreshed_at": timezone.now().isoformat()}

    # ------------------------------------------------------------------ the parts of a post

    def _post_parts(self, lead: Lead, group_id: int, refs: dict[str, Any], on_progress: ProgressHook) -> None:
        """Post what `refs` does not name yet, recording each part the moment it is posted."""
        if "forwarded_message_id" not in refs:
            refs["forwarded_message_id"] = self._forward_last_message(lead, group_id, refs)
            on_progress(refs)
        if "summary_message_id" not in refs:
            message = self._call(group_id, "send_message", text=lead_summary_text(lead))
            refs["summary_message_id"] = message.message_id
            on_progress(refs)
        reply = ReplyParameters(message_id=refs["summary_message_id"], allow_sending_without_reply=True)
        if "transcript_message_id" not in refs:
            document = InputFile(_transcript_bytes(lead), filename=transcript_filename(lead))
            message = self._call(group_id, "send_document", document=document, reply_parameters=reply)
            refs["transcript_message_id"] = message.message_id
            on_progress(refs)
        refs.setdefault("media_message_ids", [])
        done = refs.setdefault("media_parts_sent", 0)
        for part in media_parts(lead.files or [])[done:]:
            refs["media_message_ids"] += self._send_media_part(group_id, part, reply, refs)
            refs["media_parts_sent"] += 1
            on_progress(refs)

    def _forward_last_message(self, lead: Lead, group_id: int, refs: dict[str, Any]) -> int | None:
        """Forward the customer's last message, so that managers can open the profile; None if there is none."""
        if lead.chat.channel != Chat.Channel.TELEGRAM or lead.chat.business_connection_id:
            return None  # a business chat's messages are the owner's: the bot cannot forward them
        last = (
            Message.objects.filter(project_id=lead.project_id, chat_id=lead.chat_id, telegram_message_id__isnull=False)
            .order_by("-created_at", "-pk")
            .first()
        )
        if last is None:
            return None
        try:
            message = self._call(
                group_id,
                "forward_message",
                from_chat_id=lead.chat.telegram_chat_id,
                message_id=last.telegram_message_id,
                optional_for=refs,
            )
        except CrmPermanentError as exc:
            # Forbidden or "chat not found" may concern the customer's chat here (they blocked the bot), and
            # must not cost the lead: the summary, sent next to the group alone, shows if the group is the problem.
            refs.setdefault("skipped", []).append(str(exc))
            return None
        return message.message_id if message is not None else None

    def _send_media_part(
        self, group_id: int, part: list[dict[str, Any]], reply: ReplyParameters, refs: dict[str, Any]
    ) -> list[int]:
        """One file with its own method, or 2-10 files as one album; the ids of the messages posted."""
        if len(part) == 1:
            kind = part[0]["kind"]
            kwargs = {kind: part[0]["file_id"], "reply_parameters": reply, "optional_for": refs}
            message = self._call(group_id, SINGLE_METHODS[kind], **kwargs)
            return [message.message_id] if message is not None else []
        media = [ALBUM_INPUTS[file["kind"]](media=file["file_id"]) for file in part]
        messages = self._call(group_id, "send_media_group", media=media, reply_parameters=reply, optional_for=refs)
        return [message.message_id for message in messages or ()]

    # ------------------------------------------------------------------ Bot API calls and their errors

    def _call(
        self, group_id: int, method_name: str, *, optional_for: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """One Bot API call to the group under the outbox policy, its errors turned into CRM errors.

        With `optional_for` (the refs), a refused request is skipped and noted there instead of failing
        the lead: a forward of a deleted message or one unusable file must not hold the lead back.
        A post into a topic deleted meanwhile goes to the general thread instead.
        """
        try:
            return self._call_in_thread(group_id, method_name, **kwargs)
        except ChatBlocked as exc:  # Forbidden: the bot was removed from the group or cannot post there
            raise CrmPermanentError(f"the bot cannot post to lead group {group_id}: {exc}") from exc
        except PermanentSendError as exc:
            if optional_for is None or _group_missing(exc):
                raise CrmPermanentError(str(exc)) from exc
            optional_for.setdefault("skipped", []).append(str(exc))
            logger.warning("lead group: skipped %s: %s", method_name, exc, extra={"project_id": self.project.pk})
            return None
        except SendError as exc:  # transient, or timed out after the request may have arrived
            raise CrmError(str(exc)) from exc

    def _call_in_thread(self, group_id: int, method_name: str, **kwargs: Any) -> Any:
        posting = method_name.startswith(("send_", "forward_", "copy_"))
        thread = self._thread if posting else {}
        try:
            return call_with_policy(
                project=self.project, chat=None, method_name=method_name, chat_id=group_id, **kwargs, **thread
            )
        except PermanentSendError as exc:
            if not (thread and thread_gone(exc) and self._lead is not None):
                raise
            lead_topic_gone(lead=self._lead, reason=str(exc))
            self._thread = {}
            return call_with_policy(
                project=self.project, chat=None, method_name=method_name, chat_id=group_id, **kwargs
            )

    def _edit(self, group_id: int, method_name: str, **kwargs: Any) -> None:
        try:
            self._call(group_id, method_name, **kwargs)
        except CrmPermanentError as exc:
            # Editing to identical content (a refresh retried) is refused by Telegram, but it is done.
            if _NOT_MODIFIED not in str(exc).lower():
                raise

    def _group_id(self) -> int:
        if not self.project.lead_group_id:
            raise CrmPermanentError(f"project {self.project.slug} has no lead group")
        return self.project.lead_group_id

    def _log_extra(self, lead: Lead) -> dict[str, Any]:
        return {"project_id": self.project.pk, "lead_id": lead.pk, "chat_id": self.project.lead_group_id}


def transcript_filename(lead: Lead) -> str:
    return f"lead{lead.pk}.txt"


def media_parts(files: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The lead's files in posting order: photo+video albums, document albums, then the rest singly.

    A part of one file is sent with its own method (an album needs at least two items).
    """
    usable = [file for file in files if _is_usable(file)]
    visual = [file for file in usable if file["kind"] in ("photo", "video")]
    documents = [file for file in usable if file["kind"] == "document"]
    singles = [[file] for file in usable if file["kind"] not in ("photo", "video", "document")]
    return [*_albums(visual), *_albums(documents), *singles]


def _albums(files: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(files), ALBUM_SIZE):
        yield files[start : start + ALBUM_SIZE]


def _is_usable(file: object) -> bool:
    if isinstance(file, dict) and file.get("kind") in SINGLE_METHODS and file.get("file_id"):
        return True
    logger.warning("lead file skipped: unknown kind or no file_id: %r", file)
    return False


def _transcript_bytes(lead: Lead) -> bytes:
    return lead_transcript(lead).encode("utf-8")


def _group_missing(exc: PermanentSendError) -> bool:
    # The bot is not in the group (or the group is gone): every further part would fail the same way.
    return "chat not found" in str(exc).lower()
