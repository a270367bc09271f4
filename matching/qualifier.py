"""The qualifier: an LLM reads both full profiles and decides whether a candidate pair should meet.

A QUALIFICATION generation (budget-spaced like every LLM job) runs `qualification_run`; the verdict moves
the match pending -> qualified | disqualified with a conditional update, so a generation that runs twice
(a worker lost its lease) decides once. A qualification that keeps failing is retried a few times with
growing delays, then the match is disqualified with the error as its reason, so the two users are not
blocked forever; operators can re-run it from the admin.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import BaseModel, Field

from bots.generations import generation_schedule
from bots.llm.slots import resolve_chain
from bots.llm.structured import structured_output
from bots.llm.types import CallContext
from bots.models import Generation
from matching.consent import match_introduce
from matching.matcher import matching_wake
from matching.models import Match, MatchOutcome, Profile
from matching.outcomes import outcome_history
from matching.selectors import open_introduction_limit
from tenants.models import Project

logger = logging.getLogger(__name__)

MAX_FAILED_QUALIFICATIONS = 3
RETRY_DELAY = timedelta(minutes=5)  # times the number of failures so far
MAX_TOKENS = 400
REASON_LIMIT = 1000

SYSTEM = (
    "You qualify candidate introductions for an IT matchmaking service. Person A and person B were found "
    "similar by a vector search of their matching summaries; decide whether introducing them is worth both "
    "people's time. A seeker looks for work, a provider offers it, 'both' does either.\n"
    "Qualify when one side can plausibly offer what the other looks for: the skills and seniority fit, and the "
    "practical conditions (location, remote or office, employment type, rates or budget, availability) do not "
    "clearly contradict each other. Disqualify when they want the same thing from each other (two seekers of "
    "the same job), when the fields or stacks differ in substance, or when a condition is a clear deal-breaker. "
    "Private observations are the matchmaker's notes about each person: use them, but never quote them. "
    "Earlier introductions and what the people said about them afterwards are listed under each person: learn "
    "from them (a rejection for rates means rates matter to that person).\n"
    "Explain the verdict: the skills that fit, how seniority, location and format, and rates compare, and what "
    "may not fit. for_a is written to person A about person B, for_b to person B about person A, in %(language)s, "
    "one or two friendly sentences on why the other may fit them. Never write names, usernames, links, e-mail "
    "addresses or phone numbers anywhere: the two people stay anonymous until both accept."
)
LANGUAGE_NAMES = {"en": "English", "ru": "Russian"}
LIST_LIMIT = 8
ITEM_LIMIT = 120
TEXT_LIMIT = 400


class QualificationVerdict(BaseModel):
    qualified: bool = Field(description="True when both people would plausibly want to talk to each other.")
    reason: str = Field(description="One or two sentences explaining the verdict, for the operators.")
    fitting_skills: list[str] = Field(
        default_factory=list, description="Skills or technologies one side needs and the other has (short names)."
    )
    seniority: str = Field(default="", description="How the seniority levels compare; empty when unknown.")
    location_and_format: str = Field(default="", description="How location and work format compare.")
    rates: str = Field(default="", description="How rates or salary and budget compare; empty when unknown.")
    concerns: list[str] = Field(default_factory=list, description="What may not fit, short phrases; may be empty.")
    for_a: str = Field(default="", description="To person A about person B: why B may fit (no names, no contacts).")
    for_b: str = Field(default="", description="To person B about person A: why A may fit (no names, no contacts).")

    def clamped(self) -> dict:
        """The verdict as stored: lists and texts cut to sane sizes (model output is never trusted whole)."""

        def items(values: list[str]) -> list[str]:
            return [value.strip()[:ITEM_LIMIT] for value in values if value and value.strip()][:LIST_LIMIT]

        return {
            "qualified": self.qualified,
            "reason": self.reason.strip()[:REASON_LIMIT],
            "fitting_skills": items(self.fitting_skills),
            "seniority": self.seniority.strip()[:TEXT_LIMIT],
            "location_and_format": self.location_and_format.strip()[:TEXT_LIMIT],
            "rates": self.rates.strip()[:TEXT_LIMIT],
            "concerns": items(self.concerns),
            "for_a": self.for_a.strip()[:TEXT_LIMIT],
            "for_b": self.for_b.strip()[:TEXT_LIMIT],
        }


def qualification_system(project: Project) -> str:
    return SYSTEM % {"language": LANGUAGE_NAMES.get(project.language, "English")}


def _describe(label: str, profile: Profile, history: list[str]) -> str:
    fields = [
        ("role", profile.get_role_display()),
        ("summary", profile.summary),
        ("location", profile.location),
        ("work format", profile.work_format),
        ("rates", profile.rates),
        ("availability", profile.availability),
        ("matching summary", profile.matching_summary),
        ("private observations", profile.private_observations),
    ]
    lines = [f"{name}: {value}" for name, value in fields if value]
    if history:
        lines.append("earlier introductions and their outcomes:")
        lines.extend(f"- {entry}" for entry in history)
    return f"Person {label}\n" + "\n".join(lines)


def qualification_prompt(match: Match) -> str:
    assert match.user_b is not None
    project = match.project
    a_history = outcome_history(project=project, profile=match.user_a)
    b_history = outcome_history(project=project, profile=match.user_b)
    return f"{_describe('A', match.user_a, a_history)}\n\n{_describe('B', match.user_b, b_history)}"


def qualification_run(generation: Generation) -> None:
    """The generation handler: ask for a verdict and apply it once."""
    match = (
        Match.objects.select_related("project", "user_a__chat", "user_b__chat")
        .filter(pk=generation.target_id, project_id=generation.project_id)
        .first()
    )
    if match is None or match.status != Match.Status.PENDING:
        return  # already decided (a re-run after a lost lease), or an operator changed it
    result = structured_output(
        response_model=QualificationVerdict,
        system=qualification_system(match.project),
        user=qualification_prompt(match),
        chain=resolve_chain(project=match.project, slot="extract"),
        context=CallContext(purpose="qualification", project_id=match.project_id, generation_id=generation.pk),
        max_tokens=MAX_TOKENS,
        temperature=0.0,
    )
    verdict = result.output.clamped()
    match_decide(match=match, qualified=verdict["qualified"], reason=verdict["reason"], verdict=verdict)


def match_decide(*, match: Match, qualified: bool, reason: str, verdict: dict | None = None) -> bool:
    """pending -> qualified (then both users are introduced) | disqualified; False when already decided."""
    status = Match.Status.QUALIFIED if qualified else Match.Status.DISQUALIFIED
    now = timezone.now()
    verdict = verdict or {}
    decided = Match.objects.filter(pk=match.pk, status=Match.Status.PENDING).update(
        status=status, reason=reason.strip()[:REASON_LIMIT], verdict=verdict, decided_at=now, updated_at=now
    )
    if not decided:
        return False
    match.status, match.verdict = status, verdict
    logger.info("match %s", status, extra={"project_id": match.project_id, "match_id": match.pk})
    if qualified:
        match_introduce(match=match)
    else:
        matching_wake(project=match.project)  # both users are free for other candidates
    return True


def qualification_finished(generation: Generation) -> None:
    """After a failed qualification: try again later, or give up so the users are not blocked forever."""
    if generation.status != Generation.Status.FAILED:
        return
    match = (
        Match.objects.select_related("project")
        .filter(pk=generation.target_id, project_id=generation.project_id, status=Match.Status.PENDING)
        .first()
    )
    if match is None:
        return
    failures = Generation.objects.filter(
        project_id=match.project_id, kind=Generation.Kind.QUALIFICATION, target_id=match.pk,
        status=Generation.Status.FAILED,
    ).count()  # fmt: skip
    if failures < MAX_FAILED_QUALIFICATIONS:
        # generation_schedule starts no earlier than `now`: passing a later one delays the retry.
        later = timezone.now() + RETRY_DELAY * failures
        generation_schedule(project=match.project, kind=Generation.Kind.QUALIFICATION, target_id=match.pk, now=later)
        return
    logger.error("qualification failed %s times; match disqualified", failures, extra={"match_id": match.pk})
    match_decide(match=match, qualified=False, reason=f"qualification failed {failures} times: {generation.error}")


def match_requalify(*, match: Match) -> bool:
    """Operators: decide a pending or disqualified match again; refused when a user is at the open-introduction
    limit or the pair already said it did not work out."""
    from bots.tasks import generations_kick

    now = timezone.now()
    if match.user_b_id is None:
        return False
    limit = open_introduction_limit(match.project)
    with transaction.atomic():
        others_open = Match.objects.filter(status__in=Match.OPEN).exclude(pk=match.pk)
        busy = any(
            others_open.filter(Q(user_a_id=user) | Q(user_b_id=user)).count() >= limit
            for user in (match.user_a_id, match.user_b_id)
        )
        failed_pair = MatchOutcome.objects.filter(
            Q(profile_id=match.user_a_id, other_id=match.user_b_id)
            | Q(profile_id=match.user_b_id, other_id=match.user_a_id),
            worked_out=False,
        ).exists()
        if busy or failed_pair:
            return False
        reopened = Match.objects.filter(
            pk=match.pk, project_id=match.project_id, status__in=[Match.Status.PENDING, Match.Status.DISQUALIFIED]
        ).update(status=Match.Status.PENDING, decided_at=None, updated_at=now)
        if not reopened:
            return False
        generation_schedule(project=match.project, kind=Generation.Kind.QUALIFICATION, target_id=match.pk)
        generations_kick()
    return True
