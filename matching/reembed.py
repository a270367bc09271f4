"""Re-embedding profiles after an embedding model (or size) change, in batches, with progress.

Until a profile is re-embedded it keeps its old model's vector and is simply not matched: the loop only
takes profiles of the configured model and size, so old and new vectors never meet in one comparison.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils import timezone

from matching.matcher import matching_wake
from matching.models import Profile
from matching.profiles import profile_pending_activation_finish
from matching.selectors import profiles_embedding_stale
from matching.vectors import summaries_embed
from tenants.models import Project

BATCH_SIZE = 64
Progress = Callable[[int, int], None]  # (done so far, total)


@dataclass(frozen=True)
class Reembedded:
    done: int
    total: int


def profiles_reembed(*, project: Project, profiles: Iterable[Profile], wake: bool = True) -> int:
    """Recompute the vectors of the given profiles of one project with the configured model.

    Raises what the embedder raises (matching.vectors.EMBEDDING_FAILURES); nothing is written then."""
    chosen = [p for p in profiles if p.project_id == project.pk and p.matching_summary]
    if not chosen:
        return 0
    embedded = summaries_embed(project=project, texts=[p.matching_summary for p in chosen])
    now = timezone.now()
    for profile, fresh in zip(chosen, embedded, strict=True):
        # Conditional on the summary, so a change made meanwhile is never paired with an old vector.
        Profile.objects.filter(pk=profile.pk, project=project, matching_summary=profile.matching_summary).update(
            embedding=fresh.vector, embedding_model=fresh.model, embedding_dim=fresh.dim, embedded_text=fresh.text,
            embedded_at=now, embedding_error="", embedding_failed_at=None, embedding_attempts=0,
            embedding_retry_at=None, updated_at=now,
        )  # fmt: skip
    for profile in chosen:
        if profile.activation_requested_at is not None:  # a Start matching that waited for this vector
            profile_pending_activation_finish(profile_id=profile.pk)
    if wake:
        matching_wake(project=project)
    return len(chosen)


def profiles_reembed_stale(
    *, project: Project, batch_size: int = BATCH_SIZE, progress: Progress | None = None
) -> Reembedded:
    """Re-embed every profile of the project whose vector is missing or of another model, size or summary."""
    stale = profiles_embedding_stale(project=project)
    total = stale.count()
    done, after = 0, 0
    while batch := list(stale.filter(pk__gt=after).order_by("pk")[:batch_size]):
        done += profiles_reembed(project=project, profiles=batch, wake=False)
        after = batch[-1].pk
        if progress is not None:
            progress(done, total)
    if done:
        matching_wake(project=project)
    return Reembedded(done=done, total=total)
