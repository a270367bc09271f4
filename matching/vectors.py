"""Profile vectors: embed a matching summary, tell a stale vector, and record a failed attempt.

A failed embedding is never an exception the user's button press dies of: the caller records it on the
profile (reason, time, attempt count, next retry) where operators see it, and a beat sweep retries a bounded
number of times with growing delays (RETRY_DELAYS), then gives up until an operator re-embeds.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from bots.llm.embeddings import embed_texts, embedding_dim, embedding_model_id
from bots.llm.slots import InvalidModelId
from bots.llm.types import CallContext, LLMError
from matching.models import MAX_PROFILE_VECTOR_DIM, Profile
from tenants.models import Project

logger = logging.getLogger(__name__)

# After the n-th failure in a row the next attempt waits RETRY_DELAYS[n - 1]; past the end it gives up.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
)
ERROR_MAX_LENGTH = 1000


class EmbeddingUnavailable(RuntimeError):
    """The configured embedding model cannot give profile vectors (a configuration error)."""


# What an embedding attempt may fail with: configuration, the provider (after the chain's own retries),
# or the offline encoder's files. Anything else is a bug and propagates.
EMBEDDING_FAILURES: tuple[type[Exception], ...] = (EmbeddingUnavailable, LLMError, InvalidModelId, OSError)


@dataclass(frozen=True)
class ProfileVector:
    vector: list[float]
    model: str
    text: str

    @property
    def dim(self) -> int:
        return len(self.vector)


def _fits(dim: int) -> None:
    if not 0 < dim <= MAX_PROFILE_VECTOR_DIM:
        raise EmbeddingUnavailable(
            f"{embedding_model_id()} gives {dim}-dimensional vectors; profiles hold 1 to {MAX_PROFILE_VECTOR_DIM}"
        )


def summaries_embed(*, project: Project, texts: list[str], quick: bool = False) -> list[ProfileVector]:
    """Embed matching summaries with the configured model, at that model's own size (`quick`: one short
    attempt, for a user waiting on a button; see embed_texts)."""
    _fits(embedding_dim())
    context = CallContext(purpose="profile_embedding", project_id=project.pk)
    # Matching compares a summary with other summaries (symmetric similarity, no query/document roles): both
    # sides take the same kind, "query", as E5's model card advises for symmetric tasks.
    result = embed_texts(texts, kind="query", context=context, quick=quick)
    embedded = [ProfileVector(vector=v, model=result.model, text=t) for v, t in zip(result.vectors, texts, strict=True)]
    for one in embedded:
        _fits(one.dim)
    return embedded


def summary_embed(*, project: Project, text: str, quick: bool = False) -> ProfileVector:
    return summaries_embed(project=project, texts=[text], quick=quick)[0]


def embedding_stale(profile: Profile) -> bool:
    """No vector, or one of another summary, model or size than the configured one (or none is usable)."""
    try:
        model, dim = embedding_model_id(), embedding_dim()
    except InvalidModelId:  # a misconfigured EMBEDDING_MODEL: nothing is current; embedding says why
        return True
    return (
        profile.embedding is None
        or profile.embedded_text != profile.matching_summary
        or profile.embedding_model != model
        or profile.embedding_dim != dim
    )


def embedding_set(profile: Profile, embedded: ProfileVector, *, now: datetime | None = None) -> None:
    """Put a fresh vector on the (locked) profile and forget earlier failures; the caller saves."""
    profile.embedding, profile.embedding_model, profile.embedding_dim = embedded.vector, embedded.model, embedded.dim
    profile.embedded_text, profile.embedded_at = embedded.text, now or timezone.now()
    profile.embedding_error, profile.embedding_failed_at = "", None
    profile.embedding_attempts, profile.embedding_retry_at = 0, None


def embedding_failure_reason(exc: BaseException) -> str:
    try:
        model = embedding_model_id()
    except InvalidModelId:
        model = settings.EMBEDDING_MODEL or "?"
    return f"{model}: {type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]


def embedding_failure_note(profile: Profile, exc: BaseException, *, now: datetime | None = None) -> None:
    """Record a failed attempt on the (locked) profile and plan the next one, if any is left; the caller saves."""
    now = now or timezone.now()
    reason = embedding_failure_reason(exc)
    profile.embedding_error, profile.embedding_failed_at = reason, now
    profile.embedding_attempts = min(profile.embedding_attempts + 1, 32_767)
    delay = RETRY_DELAYS[profile.embedding_attempts - 1] if profile.embedding_attempts <= len(RETRY_DELAYS) else None
    profile.embedding_retry_at = now + delay if delay is not None else None
    logger.warning(
        "profile embedding failed (attempt %s, %s): %s",
        profile.embedding_attempts,
        "retry planned" if delay is not None else "gave up",
        reason,
        extra={"project_id": profile.project_id, "profile_id": profile.pk},
    )
