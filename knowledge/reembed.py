"""Re-embedding a project's knowledge base after the embedding model (or the project's adapter) changed.

Chunks keep their vectors and the id of the model that made them. A collection holds one model's vectors
at that model's size (`collection_name`), so after a change the search looks in the new model's collection:
until the chunks are re-embedded it is missing and the search finds nothing (knowledge.search logs it and
queues this). Re-embedding reads the chunks from PostgreSQL, embeds them with the current model in the
crawl's batches and rebuilds the collection from them: no page is fetched again, old and new vectors never
share a collection, and the old model's collection stays untouched (a roll-back finds it again).
"""

import logging
from collections.abc import Callable

from bots.llm.embeddings import embed_texts, embedding_model_id
from bots.llm.types import CallContext
from knowledge.models import Chunk
from knowledge.pipeline import EMBED_BATCH, embedding_input
from knowledge.store_rebuild import knowledge_store_rebuild
from tenants.models import Project

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (chunks done so far, total)


def chunks_to_reembed(*, project: Project, every: bool = False) -> int:
    chunks = Chunk.objects.filter(project=project)
    return chunks.count() if every else chunks.exclude(embedding_model=embedding_model_id()).count()


def knowledge_reembed(*, project: Project, every: bool = False, progress: Progress | None = None) -> int:
    """Embed the project's chunks of another model (`every`: all of them, after an adapter change) with the
    current one, then rebuild its collection; returns how many chunks were embedded."""
    model = embedding_model_id()
    stale = Chunk.objects.filter(project=project).order_by("pk")
    if not every:
        stale = stale.exclude(embedding_model=model)
    ids = list(stale.values_list("pk", flat=True))
    context = CallContext(purpose="crawl_embed", project_id=project.pk)
    for start in range(0, len(ids), EMBED_BATCH):
        batch = list(Chunk.objects.filter(pk__in=ids[start : start + EMBED_BATCH]).order_by("pk"))
        result = embed_texts(
            [embedding_input(chunk) for chunk in batch], kind="document", adapter=project.embedding_adapter,
            context=context,
        )  # fmt: skip
        for chunk, vector in zip(batch, result.vectors, strict=True):
            chunk.embedding, chunk.embedding_model, chunk.uploaded_at = vector, result.model, None
        Chunk.objects.bulk_update(batch, ["embedding", "embedding_model", "uploaded_at"])
        if progress is not None:
            progress(min(start + EMBED_BATCH, len(ids)), len(ids))
    if ids or Chunk.objects.filter(project=project, embedding_model=model).exists():
        knowledge_store_rebuild(project=project)
    logger.info("knowledge re-embedded", extra={"project_id": project.pk, "chunks": len(ids), "model": model})
    return len(ids)
