"""Profile services: save what the agent learned, show the card, activate, wipe, (re-)embed."""

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import override

from bots.conversation import system_reply
from bots.models import Chat
from bots.texts import DEFAULT_START, in_language
from matching import texts
from matching.matcher import matching_wake
from matching.models import Match, Profile
from matching.selectors import profile_embedding_retries_due, profile_for_chat
from matching.vectors import (
    EMBEDDING_FAILURES,
    ProfileVector,
    embedding_failure_note,
    embedding_failure_reason,
    embedding_set,
    embedding_stale,
    summary_embed,
)
from tenants.models import Project

logger = logging.getLogger(__name__)

# What the agent may write, with the longest value accepted (longer input is refused, not cut).
FIELD_LIMITS = {
    "role": 16,
    "summary": 2000,
    "location": 200,
    "work_format": 200,
    "rates": 200,
    "availability": 200,
    "private_observations": 4000,
    "matching_summary": 1500,
}
CARD_FIELDS = ("role", "summary", "location", "work_format", "rates", "availability", "matching_summary")
ACTIVATE_DATA = "match:activate"
WIPE_YES_DATA = "match:wipe:yes"
WIPE_NO_DATA = "match:wipe:no"


class ProfileInvalid(ValueError):
    """The agent's input cannot be saved; the message says why (it goes back to the model)."""


@dataclass(frozen=True)
class ProfileSaved:
    profile: Profile
    previous_state: str
    changed: tuple[str, ...]

    @property
    def card_due(self) -> bool:
        """The user sees a card whenever a complete profile awaiting confirmation changed or became so."""
        waiting = (Profile.State.READY, Profile.State.UPDATED)
        return self.profile.state in waiting and (bool(self.changed) or self.previous_state != self.profile.state)


class Activation(enum.StrEnum):
    ACTIVATED = "activated"
    DEFERRED = "deferred"  # the summary could not be embedded yet: it joins once a retry succeeds
    ALREADY_ACTIVE = "already_active"
    NOT_READY = "not_ready"


def profile_get_or_create(*, project: Project, chat: Chat) -> Profile:
    try:
        with transaction.atomic():
            profile, _ = Profile.objects.get_or_create(project=project, chat=chat)
    except IntegrityError:  # created by a concurrent call a moment ago
        profile = Profile.objects.get(project=project, chat=chat)
    return profile


def _validated(changes: Mapping[str, Any]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name, value in changes.items():
        if name not in FIELD_LIMITS:
            raise ProfileInvalid(f"unknown profile field {name!r}")
        if not isinstance(value, str):
            raise ProfileInvalid(f"{name} must be a string")
        value = value.strip()
        if len(value) > FIELD_LIMITS[name]:
            raise ProfileInvalid(f"{name} is longer than {FIELD_LIMITS[name]} characters; shorten it")
        if name == "role" and value and value not in Profile.Role.values:
            raise ProfileInvalid(f"roles must be one of {', '.join(Profile.Role.values)}")
        clean[name] = value
    return clean


def profile_save(*, project: Project, chat: Chat, changes: Mapping[str, Any], complete: bool) -> ProfileSaved:
    """Apply the agent's changes; a completed profile waits for the user's Start matching.

    An active profile whose shared fields change leaves matching (state `updated`) until the user confirms
    again; its vector is recomputed only when the matching summary itself changed. Private observations
    alone change nothing for matching (rewording notes must not re-open disqualified pairs).
    """
    clean = _validated(changes)
    profile = profile_get_or_create(project=project, chat=chat)
    new_summary = clean.get("matching_summary", profile.matching_summary)
    # The embedding call happens before the row lock; the summary is checked again under the lock. It only
    # prepares the vector for the next Start matching (which embeds anyway), so a failure is noted, not raised.
    fresh: ProfileVector | None = None
    failure: Exception | None = None
    if profile.embedding is not None and new_summary and new_summary != profile.embedded_text:
        try:
            fresh = summary_embed(project=project, text=new_summary)
        except EMBEDDING_FAILURES as exc:
            failure = exc
    with transaction.atomic():
        profile = Profile.objects.select_for_update().get(pk=profile.pk)
        previous_state = profile.state
        changed = tuple(name for name, value in clean.items() if getattr(profile, name) != value)
        for name in changed:
            setattr(profile, name, clean[name])
        if complete and not (profile.role and profile.matching_summary and profile.summary):
            raise ProfileInvalid("complete needs roles, summary and matching_summary: ask for what is missing")
        shared_changed = any(name in Profile.SHARED_FIELDS for name in changed)
        if not complete:
            profile.state = Profile.State.ONBOARDING
        elif previous_state == Profile.State.ONBOARDING:
            profile.state = Profile.State.READY
        elif previous_state == Profile.State.ACTIVE and shared_changed:
            profile.state = Profile.State.UPDATED
        if shared_changed:
            profile.profile_updated_at = timezone.now()
            # A Start matching that waited for the old summary's vector does not confirm the changed profile.
            profile.activation_requested_at = None
        if fresh is not None and profile.matching_summary == fresh.text:
            embedding_set(profile, fresh)
        elif failure is not None:
            embedding_failure_note(profile, failure)
        profile.save()
    logger.info(
        "profile saved",
        extra={"project_id": project.pk, "chat_id": chat.telegram_chat_id, "state": profile.state, "changed": changed},
    )
    return ProfileSaved(profile=profile, previous_state=previous_state, changed=changed)


def profile_card_text(*, profile: Profile, project: Project) -> str:
    with override(project.language):
        lines = []
        for name in CARD_FIELDS:
            if value := getattr(profile, name):
                shown = texts.ROLE_LABELS[value] if name == "role" else value
                lines.append(f"{texts.FIELD_LABELS[name]}: {shown}")
        closing = texts.CARD_UPDATED if profile.state == Profile.State.UPDATED else texts.CARD_READY
        return "\n\n".join([str(texts.CARD_TITLE), "\n".join(lines), str(closing)])


def start_matching_markup(project: Project) -> dict[str, Any]:
    button = {"text": in_language(project, texts.BUTTON_START_MATCHING), "callback_data": ACTIVATE_DATA}
    return {"inline_keyboard": [[button]]}


def profile_card_send(*, profile: Profile) -> None:
    project = profile.project
    system_reply(
        chat=profile.chat, text=profile_card_text(profile=profile, project=project),
        reply_markup=start_matching_markup(project),
    )  # fmt: skip


def profile_activate(*, project: Project, chat: Chat) -> Activation:
    """The user pressed Start matching: embed the matching summary if needed and join the matching loop.

    When the summary cannot be embedded (provider down, a model that does not fit), the press is still an
    answer: the failure is recorded on the profile, a retry is planned (bounded, see matching.vectors), the user
    is told once that matching starts shortly, and the profile joins as soon as a retry succeeds.
    """
    profile = profile_for_chat(project=project, chat=chat)
    if profile is None or profile.state == Profile.State.ONBOARDING:
        return Activation.NOT_READY
    if profile.state == Profile.State.ACTIVE:
        return Activation.ALREADY_ACTIVE
    # The user waits for the button's answer: one short attempt; the planned retries do the patient work.
    fresh, failure = _embedded_or_failure(profile, quick=True)
    with transaction.atomic():
        profile = Profile.objects.select_for_update().get(pk=profile.pk)
        if profile.state == Profile.State.ACTIVE:  # a concurrent press won
            return Activation.ALREADY_ACTIVE
        if profile.state == Profile.State.ONBOARDING:
            return Activation.NOT_READY
        if fresh is not None and fresh.text == profile.matching_summary:
            embedding_set(profile, fresh)
        if failure is None and embedding_stale(profile):  # the summary changed while we embedded: embed again
            fresh, failure = _embedded_or_failure(profile, quick=True)
            if fresh is not None:
                embedding_set(profile, fresh)
        if failure is not None:
            first_press = profile.activation_requested_at is None
            _deferral_note(profile, failure, first_press=first_press)
            profile.save()
        else:
            _join(profile)
    if failure is not None:
        if first_press:  # later presses get the button's notice only: the user is not spammed
            system_reply(chat=chat, text=in_language(project, texts.ACTIVATION_DEFERRED))
        return Activation.DEFERRED
    matching_wake(project=project)
    system_reply(chat=chat, text=in_language(project, texts.ACTIVATED))
    return Activation.ACTIVATED


def _embedded_or_failure(profile: Profile, *, quick: bool = False) -> tuple[ProfileVector | None, Exception | None]:
    if not embedding_stale(profile):
        return None, None
    try:
        return summary_embed(project=profile.project, text=profile.matching_summary, quick=quick), None
    except EMBEDDING_FAILURES as exc:
        return None, exc


def _deferral_note(profile: Profile, failure: Exception, *, first_press: bool) -> None:
    """The first failed press plans the bounded retries; a press while they run only refreshes the reason,
    so pressing again and again neither uses up the retries nor piles up attempts."""
    if first_press:
        profile.activation_requested_at = timezone.now()
        profile.embedding_attempts = 0
        embedding_failure_note(profile, failure)
    else:
        profile.embedding_error = embedding_failure_reason(failure)
        profile.embedding_failed_at = timezone.now()


def _join(profile: Profile) -> None:
    profile.state = Profile.State.ACTIVE
    profile.activated_at = timezone.now()
    profile.activation_requested_at = None
    profile.save()


def profile_embedding_retry(*, profile_id: int, now: datetime | None = None) -> bool:
    """One planned retry (the beat sweep): embed again; on success a pending Start matching completes.

    Returns whether the profile now has a current vector."""
    now = now or timezone.now()
    profile = (
        Profile.objects.select_related("project", "chat").filter(pk=profile_id, embedding_retry_at__lte=now).first()
    )
    if profile is None:
        return False
    fresh, failure = _embedded_or_failure(profile) if profile.matching_summary else (None, None)
    with transaction.atomic():
        profile = Profile.objects.select_for_update(of=("self",)).select_related("project", "chat").get(pk=profile.pk)
        if fresh is not None and fresh.text == profile.matching_summary:
            embedding_set(profile, fresh, now=now)
        elif failure is not None:
            embedding_failure_note(profile, failure, now=now)
        elif not profile.matching_summary or not embedding_stale(profile):
            profile.embedding_retry_at = None  # nothing left to embed (wiped, or embedded meanwhile)
        # else: the summary changed while we embedded; the retry stays due and the next sweep takes it.
        joins = _joins_now(profile)
        if joins:
            _join(profile)
        else:
            profile.save()
    if joins:
        _joined_tell(profile)
    return not embedding_stale(profile)


def _joins_now(profile: Profile) -> bool:
    """A Start matching that waited for the vector can complete: the vector is there, the profile unchanged."""
    return (
        profile.activation_requested_at is not None
        and profile.state in (Profile.State.READY, Profile.State.UPDATED)
        and not embedding_stale(profile)
    )


def _joined_tell(profile: Profile) -> None:
    matching_wake(project=profile.project)
    system_reply(chat=profile.chat, text=in_language(profile.project, texts.ACTIVATED))


def profile_pending_activation_finish(*, profile_id: int) -> bool:
    """After an operator's re-embed: a Start matching that waited for this vector completes now."""
    with transaction.atomic():
        profile = (
            Profile.objects.select_for_update(of=("self",))
            .select_related("project", "chat")
            .filter(pk=profile_id)
            .first()
        )
        joins = profile is not None and _joins_now(profile)
        if joins:
            _join(profile)
    if joins:
        _joined_tell(profile)
    return joins


def profile_embeddings_retry_due(*, now: datetime | None = None, limit: int = 100, max_seconds: float = 50.0) -> int:
    """Run the due retries, oldest first, at most `limit` or `max_seconds` per sweep (an outage makes each
    attempt slow; the rest stay due for the next sweep). Returns how many were tried."""
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds
    tried = 0
    for profile_id in profile_embedding_retries_due(now=now).values_list("pk", flat=True)[:limit]:
        if time.monotonic() >= deadline:
            break
        profile_embedding_retry(profile_id=profile_id, now=now)
        tried += 1
    return tried


def profile_wipe(*, project: Project, chat: Chat) -> bool:
    """Forget the profile (the user confirmed /start): open matches close, the conversation starts over."""
    now = timezone.now()
    with transaction.atomic():
        profile = Profile.objects.select_for_update().filter(project=project, chat=chat).first()
        if profile is None or not profile.has_data:
            return False
        for name in FIELD_LIMITS:
            setattr(profile, name, "")
        profile.state = Profile.State.ONBOARDING
        profile.embedding, profile.embedding_model, profile.embedded_text, profile.embedded_at = None, "", "", None
        profile.embedding_dim = None
        profile.embedding_retry_at, profile.activation_requested_at = None, None
        profile.embedding_error, profile.embedding_failed_at, profile.embedding_attempts = "", None, 0
        profile.profile_updated_at, profile.activated_at = now, None
        profile.save()
        closed = Match.objects.filter(Q(user_a=profile) | Q(user_b=profile), status__in=Match.OPEN).update(
            status=Match.Status.REJECTED, closed_at=now, updated_at=now
        )
        Chat.objects.filter(pk=chat.pk, project=project).update(state={})
    if closed:
        matching_wake(project=project)  # their counterparts are free again
    system_reply(chat=chat, text=project.start_reply.strip() or in_language(project, DEFAULT_START))
    return True


def profile_wipe_confirmation_send(*, project: Project, chat: Chat) -> None:
    markup = {
        "inline_keyboard": [
            [
                {"text": in_language(project, texts.BUTTON_WIPE_YES), "callback_data": WIPE_YES_DATA},
                {"text": in_language(project, texts.BUTTON_WIPE_NO), "callback_data": WIPE_NO_DATA},
            ]
        ]
    }
    system_reply(chat=chat, text=in_language(project, texts.WIPE_CONFIRM), reply_markup=markup)
