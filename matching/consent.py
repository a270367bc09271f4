"""Mutual consent: introductions with Accept/Reject, the answers, and the contacts on `connected`.

qualified -> a_accepted | b_accepted | rejected; a_accepted/b_accepted -> connected | rejected.
Every transition is one conditional UPDATE that names the status it expects, so of two concurrent presses
exactly one wins and the other changes nothing. Every message that must go out once (introductions, each
side's contact) is claimed first with a conditional UPDATE of its own timestamp, then sent: a redelivered
task or a second press can never send it again.
"""

import enum
import logging
import re
from dataclasses import dataclass

from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import override

from bots.conversation import system_reply
from bots.models import Chat
from bots.texts import in_language
from matching import texts
from matching.matcher import matching_wake
from matching.models import Match, Profile
from matching.outcomes import outcomes_schedule
from matching.selectors import match_for_project, profile_for_chat
from tenants.models import Project

logger = logging.getLogger(__name__)


class Press(enum.StrEnum):
    ACCEPTED = "accepted"  # the first acceptance: waiting for the other side
    CONNECTED = "connected"  # the second acceptance: contacts exchanged
    REJECTED = "rejected"
    UNCHANGED = "unchanged"  # a repeated or late press: nothing changed
    FORBIDDEN = "forbidden"  # not a participant (or no such match): nothing changed


@dataclass(frozen=True)
class PressResult:
    outcome: Press
    notice: str  # shown to the presser as the button's toast


def contact_link(chat: Chat) -> str:
    if chat.username:
        return f"https://t.me/{chat.username}"
    return f"tg://user?id={chat.user_id or chat.telegram_chat_id}"


# Contact details the model might still write despite its instructions: links, handles, e-mails, phones.
_CONTACT_PATTERNS = [
    # A link ends before trailing punctuation of the sentence around it.
    re.compile(r"(?:https?://|tg://|www\.|\bt\.me/)[^\s,;()]*[^\s,;().!?:]", re.IGNORECASE),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    re.compile(r"(?<!\w)@\w{3,}"),
    re.compile(r"\+\d[\d\s().-]{7,}\d"),  # international phone numbers (rates never start with +)
    re.compile(r"(?<!\d)\d{10,11}(?!\d)"),
]


def anonymised(text: str, *, people: list[Profile]) -> str:
    """The text without contact details and without the names of the two people (before both accept)."""
    for pattern in _CONTACT_PATTERNS:
        text = pattern.sub("…", text)
    for profile in people:
        chat = profile.chat
        for name in (chat.first_name, chat.last_name, chat.username):
            if name and len(name) >= 3:  # two letters would hit words like Go
                text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "…", text, flags=re.IGNORECASE)
    return text


def introduction_text(*, project: Project, match: Match, side: str) -> str:
    """What `side` ("a" or "b") is told about the other: their summary and why they fit, from the verdict,
    in the project's language, with no name or contact of either person."""
    receiver, other = (match.user_a, match.user_b) if side == "a" else (match.user_b, match.user_a)
    assert other is not None
    assert receiver is not None
    verdict = match.verdict or {}
    with override(project.language):
        role = texts.ROLE_LABELS.get(other.role, other.role)
        parts = [str(texts.INTRODUCTION_HEAD) % {"role": role, "summary": other.matching_summary}]
        why = verdict.get(f"for_{side}", "")
        if why:
            parts.append(str(texts.INTRODUCTION_WHY) % {"why": why})
        facts = [
            (texts.FIT_SKILLS, ", ".join(verdict.get("fitting_skills") or [])),
            (texts.FIT_SENIORITY, verdict.get("seniority", "")),
            (texts.FIT_LOCATION_FORMAT, verdict.get("location_and_format", "")),
            (texts.FIT_RATES, verdict.get("rates", "")),
            (texts.FIT_CONCERNS, "; ".join(verdict.get("concerns") or [])),
        ]
        lines = [f"{label}: {value}" for label, value in facts if value]
        if lines:
            parts.append("\n".join(lines))
        parts.append(str(texts.INTRODUCTION_QUESTION))
    return anonymised("\n\n".join(parts), people=[receiver, other])


def _consent_markup(project: Project, match: Match) -> dict:
    return {
        "inline_keyboard": [
            [
                {"text": in_language(project, texts.BUTTON_ACCEPT), "callback_data": f"match:accept:{match.pk}"},
                {"text": in_language(project, texts.BUTTON_REJECT), "callback_data": f"match:reject:{match.pk}"},
            ]
        ]
    }


def match_introduce(*, match: Match) -> bool:
    """Show each side the other's matching summary and why they fit (never the private observations, names
    or contacts) with the buttons."""
    now = timezone.now()
    claimed = Match.objects.filter(pk=match.pk, status=Match.Status.QUALIFIED, introduced_at__isnull=True).update(
        introduced_at=now, updated_at=now
    )
    if not claimed:
        return False
    project, user_a, user_b = match.project, match.user_a, match.user_b
    assert user_b is not None
    markup = _consent_markup(project, match)
    system_reply(chat=user_a.chat, text=introduction_text(project=project, match=match, side="a"), reply_markup=markup)
    system_reply(chat=user_b.chat, text=introduction_text(project=project, match=match, side="b"), reply_markup=markup)
    if user_a.chat.blocked_at is not None or user_b.chat.blocked_at is not None:
        # Someone who blocked the bot can never answer: close the match so the other is not held forever.
        closed = Match.objects.filter(pk=match.pk, status=Match.Status.QUALIFIED).update(
            status=Match.Status.REJECTED,
            closed_at=now,
            updated_at=now,
            reason=Concat(F("reason"), Value(" [closed: a user blocked the bot]")),
        )
        if closed:
            matching_wake(project=project)
    return True


def match_press(*, project: Project, chat: Chat, match_id: int, accept: bool) -> PressResult:
    """A participant pressed Accept or Reject; anyone else is told it is not theirs, and nothing changes."""
    match = match_for_project(project=project, match_id=match_id)
    profile = profile_for_chat(project=project, chat=chat)
    # A missing match and someone else's match answer alike: the press reveals nothing.
    if match is None or profile is None or profile.pk not in (match.user_a_id, match.user_b_id):
        return PressResult(Press.FORBIDDEN, in_language(project, texts.NOT_YOUR_MATCH))
    side = "a" if profile.pk == match.user_a_id else "b"
    if accept:
        return match_accept(match=match, side=side)
    return match_reject(match=match, side=side)


def _sides(match: Match, side: str) -> tuple[Profile, Profile]:
    """(the presser, the other participant) of a pair match."""
    if match.user_b is None:
        raise ValueError(f"match {match.pk} is an unmatched try, not a pair")
    return (match.user_a, match.user_b) if side == "a" else (match.user_b, match.user_a)


def _accepted_by(side: str) -> str:
    return Match.Status.A_ACCEPTED if side == "a" else Match.Status.B_ACCEPTED


def _other(side: str) -> str:
    return "b" if side == "a" else "a"


def _unchanged(match: Match) -> PressResult:
    match.refresh_from_db(fields=["status"])
    still_open = match.status in Match.OPEN
    notice = texts.ALREADY_ANSWERED if still_open else texts.MATCH_CLOSED
    return PressResult(Press.UNCHANGED, in_language(match.project, notice))


def match_accept(*, match: Match, side: str) -> PressResult:
    project, now = match.project, timezone.now()
    presser, _ = _sides(match, side)
    if Match.objects.filter(pk=match.pk, status=Match.Status.QUALIFIED).update(
        status=_accepted_by(side), first_accepted_at=now, updated_at=now
    ):
        system_reply(chat=presser.chat, text=in_language(project, texts.ACCEPTED_WAITING))
        return PressResult(Press.ACCEPTED, in_language(project, texts.ACCEPTED_NOTICE))
    if Match.objects.filter(pk=match.pk, status=_accepted_by(_other(side))).update(
        status=Match.Status.CONNECTED, closed_at=now, updated_at=now
    ):
        outcomes_schedule(match=match, now=now)
        match_contacts_send(match=match)
        matching_wake(project=project)
        return PressResult(Press.CONNECTED, in_language(project, texts.ACCEPTED_NOTICE))
    return _unchanged(match)


def match_reject(*, match: Match, side: str) -> PressResult:
    project, now = match.project, timezone.now()
    presser, other = _sides(match, side)
    closing = {"status": Match.Status.REJECTED, "closed_at": now, "updated_at": now}
    # Statuses only move forward, so trying `qualified` first and then the other's acceptance tells which
    # one was rejected. Rejecting one's own acceptance is no transition: a second press changes nothing.
    rejected_open = Match.objects.filter(pk=match.pk, status=Match.Status.QUALIFIED).update(**closing)
    rejected_accepted = (
        not rejected_open
        and Match.objects.filter(pk=match.pk, status=_accepted_by(_other(side))).update(**closing) == 1
    )
    if not (rejected_open or rejected_accepted):
        return _unchanged(match)
    system_reply(chat=presser.chat, text=in_language(project, texts.REJECTED))
    if rejected_accepted:  # they had said yes and wait for an answer
        system_reply(chat=other.chat, text=in_language(project, texts.OTHER_DECLINED))
    matching_wake(project=project)
    return PressResult(Press.REJECTED, in_language(project, texts.REJECTED_NOTICE))


def match_contacts_send(*, match: Match) -> None:
    """On connected: each side receives the other's contact, each exactly once (claimed, then sent)."""
    project, user_a, user_b = match.project, match.user_a, match.user_b
    assert user_b is not None
    for receiver, other, claim in ((user_a, user_b, "a_contact_sent_at"), (user_b, user_a, "b_contact_sent_at")):
        now = timezone.now()
        claimed = Match.objects.filter(pk=match.pk, status=Match.Status.CONNECTED, **{f"{claim}__isnull": True}).update(
            **{claim: now, "updated_at": now}
        )
        if not claimed:
            continue
        name = other.chat.first_name or other.chat.username or in_language(project, texts.SOMEONE)
        with override(project.language):
            text = str(texts.CONNECTED) % {
                "name": name, "link": contact_link(other.chat), "summary": other.matching_summary,
            }  # fmt: skip
        system_reply(chat=receiver.chat, text=text)
    logger.info("match connected", extra={"project_id": project.pk, "match_id": match.pk})
