"""Outcomes of connections: a while after two people connected, each is asked whether they talked and
whether it worked out, and, when it did not, why (optional). All questions are inline buttons.

The outcome rows are created on `connected` with `ask_at` = now + the project's delay; the beat sweep
(`outcomes_ask_due`) claims due rows with a conditional update and sends the first question, so a question
goes out once even with two sweepers. Every answer is a conditional update of a still-empty field: a second
press of the same or another button changes nothing.

An answer "did not work out" (or "we did not talk") from either side keeps the pair apart for good (see
`profile_counterparts`), and every answer is shown to the qualifier with those users' future candidates.
"""

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from bots.conversation import system_reply
from bots.models import Chat
from bots.texts import in_language
from matching import texts
from matching.models import Match, MatchOutcome, Profile
from matching.selectors import profile_for_chat
from tenants.models import Project

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 10  # earlier introductions shown to the qualifier per person
SUMMARY_EXCERPT = 160

TALKED, WORKED, WHY = "talked", "worked", "why"


class Answer(enum.StrEnum):
    RECORDED = "recorded"
    UNCHANGED = "unchanged"  # answered before: nothing changed
    FORBIDDEN = "forbidden"  # not this user's question (or no such row)


@dataclass(frozen=True)
class AnswerResult:
    outcome: Answer
    notice: str


def outcomes_schedule(*, match: Match, now: datetime | None = None) -> int:
    """On connected: one outcome row (and so one question) per side, due after the project's delay."""
    if match.user_b_id is None:
        return 0
    now = now or timezone.now()
    ask_at = now + timedelta(hours=match.project.matching_outcome_delay_hours)
    sides = ((match.user_a_id, match.user_b_id), (match.user_b_id, match.user_a_id))
    rows = [
        MatchOutcome(project_id=match.project_id, match=match, profile_id=mine, other_id=theirs, ask_at=ask_at)
        for mine, theirs in sides
    ]
    return len(MatchOutcome.objects.bulk_create(rows, ignore_conflicts=True))


def _markup(project: Project, outcome: MatchOutcome, step: str, choices: list[tuple[str, object]]) -> dict:
    row = [
        {"text": in_language(project, label), "callback_data": f"match:{step}:{outcome.pk}:{value}"}
        for value, label in choices
    ]
    # Telegram shows long labels cut: two buttons per row.
    return {"inline_keyboard": [row[i : i + 2] for i in range(0, len(row), 2)]}


def _talked_question(project: Project, outcome: MatchOutcome) -> tuple[str, dict]:
    markup = _markup(project, outcome, TALKED, [("yes", texts.BUTTON_TALKED_YES), ("no", texts.BUTTON_TALKED_NO)])
    return in_language(project, texts.OUTCOME_TALKED_QUESTION), markup


def _worked_question(project: Project, outcome: MatchOutcome) -> tuple[str, dict]:
    markup = _markup(project, outcome, WORKED, [("yes", texts.BUTTON_WORKED_YES), ("no", texts.BUTTON_WORKED_NO)])
    return in_language(project, texts.OUTCOME_WORKED_QUESTION), markup


def _reason_question(project: Project, outcome: MatchOutcome) -> tuple[str, dict]:
    choices = [(code, texts.REASON_LABELS[code]) for code in MatchOutcome.Reason.values]
    markup = _markup(project, outcome, WHY, [*choices, ("skip", texts.BUTTON_REASON_SKIP)])
    return in_language(project, texts.OUTCOME_REASON_QUESTION), markup


def outcomes_ask_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat sweep: send the first question of every due outcome row, each exactly once."""
    now = now or timezone.now()
    due = (
        MatchOutcome.objects.filter(asked_at__isnull=True, ask_at__lte=now)
        .select_related("project", "profile__chat")
        .order_by("ask_at", "pk")[:limit]
    )
    asked = 0
    for outcome in due:
        if not MatchOutcome.objects.filter(pk=outcome.pk, asked_at__isnull=True).update(asked_at=now):
            continue  # another sweeper took it
        chat, project = outcome.profile.chat, outcome.project
        if chat.blocked_at is not None or project.is_deleted:
            continue
        text, markup = _talked_question(project, outcome)
        system_reply(chat=chat, text=text, reply_markup=markup)
        asked += 1
    if asked:
        logger.info("asked %s outcome question(s)", asked)
    return asked


def outcome_answer(*, project: Project, chat: Chat, outcome_id: int, step: str, value: str) -> AnswerResult:
    """A press on an outcome question; only the asked user's presses count, each field is written once."""
    profile = profile_for_chat(project=project, chat=chat)
    outcome = (
        MatchOutcome.objects.filter(project=project, pk=outcome_id, profile=profile).first()
        if profile is not None
        else None
    )
    if outcome is None:
        return AnswerResult(Answer.FORBIDDEN, in_language(project, texts.NOT_YOUR_MATCH))
    now = timezone.now()
    unanswered = MatchOutcome.objects.filter(pk=outcome.pk)
    follow_up: tuple[str, dict] | None = None
    closing = texts.OUTCOME_THANKS
    if step == TALKED and value in ("yes", "no"):
        talked = value == "yes"
        changes = {"talked": talked, "answered_at": now}
        if not talked:
            changes["worked_out"] = False  # they never talked: the introduction did not work out
        changed = unanswered.filter(talked__isnull=True, worked_out__isnull=True).update(**changes)
        follow_up = (_worked_question if talked else _reason_question)(project, outcome)
    elif step == WORKED and value in ("yes", "no"):
        worked = value == "yes"
        changed = unanswered.filter(talked=True, worked_out__isnull=True).update(worked_out=worked, answered_at=now)
        follow_up = None if worked else _reason_question(project, outcome)
        closing = texts.OUTCOME_GLAD if worked else closing
    elif step == WHY and (value in MatchOutcome.Reason.values or value == "skip"):
        reason = "" if value == "skip" else value
        changed = unanswered.filter(worked_out=False, reason_given=False).update(
            reason=reason, reason_given=True, answered_at=now
        )
    else:
        logger.info("unknown outcome answer %s:%s", step, value, extra={"project_id": project.pk})
        return AnswerResult(Answer.UNCHANGED, in_language(project, texts.ALREADY_ANSWERED))
    if not changed:
        return AnswerResult(Answer.UNCHANGED, in_language(project, texts.ALREADY_ANSWERED))
    logger.info(
        "outcome answered",
        extra={"project_id": project.pk, "chat_id": chat.telegram_chat_id, "match_id": outcome.match_id, "step": step},
    )
    if follow_up is not None:
        system_reply(chat=chat, text=follow_up[0], reply_markup=follow_up[1])
    else:
        system_reply(chat=chat, text=in_language(project, closing))
    return AnswerResult(Answer.RECORDED, in_language(project, texts.OUTCOME_NOTED))


def outcome_history(*, project: Project, profile: Profile) -> list[str]:
    """This user's earlier introductions with what both sides said afterwards, for the qualifier."""
    matches = (
        Match.objects.filter(Q(user_a=profile) | Q(user_b=profile), project=project, introduced_at__isnull=False)
        .exclude(status__in=Match.OPEN)
        .select_related("user_a", "user_b")
        .prefetch_related("outcomes")
        .order_by("-introduced_at")[:HISTORY_LIMIT]
    )
    lines = []
    for match in matches:
        other = match.user_b if match.user_a_id == profile.pk else match.user_a
        assert other is not None
        excerpt = " ".join(other.matching_summary.split())[:SUMMARY_EXCERPT]
        said = {
            ("this person" if outcome.profile_id == profile.pk else "the other person"): outcome.summary
            for outcome in match.outcomes.all()
            if outcome.answered_at is not None
        }
        answers = "; ".join(f"{who}: {what}" for who, what in sorted(said.items()))
        status = match.get_status_display().lower()
        lines.append(
            f"with a {other.get_role_display().lower()} ({excerpt}): {status}" + (f"; {answers}" if answers else "")
        )
    return lines
