"""Re-create a project's vector collection from its stored chunks: after a restore, or when the store was lost.

Chunks keep their embeddings in the database and BM25 statistics are rows too, so the vector store holds
nothing that cannot be rebuilt; this goes through the pipeline's own point layout and store functions, so it
works whatever engine serves the store (a Qdrant server, the embedded one).
"""

import logging

from django.utils import timezone

from bots.llm.embeddings import embedding_model_id
from knowledge.bm25 import bm25_fit, bm25_stats_load, bm25_stats_save
from knowledge.models import Chunk
from knowledge.pipeline import UPLOAD_BATCH, _chunk_terms, _collection, _point
from knowledge.vector_store import collection_drop, points_upsert
from tenants.models import Project

logger = logging.getLogger(__name__)


def knowledge_store_rebuild(*, project: Project) -> int:
    """Drop the project's collection for the current embedding model and upload every chunk embedded with it.

    Returns how many chunks were uploaded; chunks embedded with another model wait for the next crawl.
    """
    model = embedding_model_id()
    corpus = list(Chunk.objects.filter(project=project, embedding_model=model).select_related("page").order_by("pk"))
    collection = _collection(project)
    collection_drop(collection=collection)
    collection = _collection(project)
    if not corpus:
        return 0
    terms = {chunk.pk: _chunk_terms(chunk, project.language) for chunk in corpus}
    stats = bm25_stats_load(project=project)
    if stats is None:  # a backup from before BM25 statistics were kept: fit them now
        stats = bm25_fit(list(terms.values()), language=project.language)
        bm25_stats_save(project=project, stats=stats)
    for start in range(0, len(corpus), UPLOAD_BATCH):
        batch = corpus[start : start + UPLOAD_BATCH]
        points_upsert(collection=collection, points=[_point(chunk, terms[chunk.pk], stats) for chunk in batch])
    Chunk.objects.filter(pk__in=[chunk.pk for chunk in corpus]).update(uploaded_at=timezone.now())
    logger.info("knowledge store rebuilt", extra={"project_id": project.pk, "chunks": len(corpus)})
    return len(corpus)
