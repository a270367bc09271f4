"""Hybrid knowledge search for the sales agent's `hybrid_search` tool.

The query is embedded (as a query: `kind="query"`) with the current embedding model and turned into a BM25
query vector with the project's persisted statistics; the store fuses both with the fusion tuned for the
model (`knowledge.fusion.fusion_for_model`). At most three results come back
whatever the model asks for, and fused scores under the minimum are dropped: the model itself is the reranker.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from bots.llm.embeddings import embed_texts, embedding_dim, embedding_model_id
from bots.llm.types import CallContext
from knowledge.bm25 import BM25Stats, SparseVector, analyze, bm25_query_vector, bm25_stats_load
from knowledge.fusion import HYBRID_FUSION, HYBRID_MAX_RESULTS, fusion_for_model
from knowledge.models import BM25Index, Chunk
from knowledge.store_owner import store_reachable_here
from knowledge.vector_store import SearchHit, collection_exists, collection_name, hybrid_query
from tenants.models import Project

logger = logging.getLogger(__name__)

MAX_RESULTS = HYBRID_MAX_RESULTS
# The default fusion's floor; each model's own (knowledge.fusion.fusion_for_model) is what a search uses.
MIN_FUSED_SCORE = HYBRID_FUSION.min_score
_EMPTY_SPARSE = SparseVector(indices=[], values=[])


# How long a process that does not own the embedded store waits for the owner's answer.
OWNER_SEARCH_TIMEOUT_SECONDS = 20.0


def knowledge_search(*, project: Project, query: str, top_k: int = 3, url_filter: str | None = None) -> list[SearchHit]:
    query = query.strip()
    if not query:
        return []
    if not store_reachable_here():
        return _search_through_owner(project=project, query=query, top_k=top_k, url_filter=url_filter)
    # Checked before embedding so that a project without a knowledge base costs no embedding call.
    if not collection_exists(
        collection=collection_name(project_id=project.pk, model_id=embedding_model_id(), dim=embedding_dim())
    ):
        _reembed_if_stale(project=project)
        return []
    embedded = embed_texts(
        [query],
        kind="query",
        adapter=project.embedding_adapter,
        context=CallContext(purpose="search_query", project_id=project.pk),
    )
    collection = collection_name(project_id=project.pk, model_id=embedded.model, dim=embedded.dim)
    fusion = fusion_for_model(embedded.model)
    return hybrid_query(
        collection=collection,
        dense=embedded.vectors[0],
        sparse=_query_sparse_vector(project=project, query=query),
        limit=max(1, min(int(top_k), MAX_RESULTS)),
        url_filter=url_filter or None,
        project_id=project.pk,
        fusion=fusion,
    )


# Project id -> when a re-embedding was queued by this process: one request per project per window.
_reembed_lock = threading.Lock()
_reembed_queued: dict[int, float] = {}
REEMBED_REQUEST_WINDOW_SECONDS = 600.0


def _reembed_if_stale(*, project: Project) -> None:
    """No collection for the current model, but chunks of another one: the embedding model changed and the
    knowledge base was not re-embedded. Say so and queue the re-embedding instead of finding nothing quietly."""
    model = embedding_model_id()
    stale = Chunk.objects.filter(project=project).exclude(embedding_model__in=[model, ""])
    if not stale.exists():
        return
    now = time.monotonic()
    with _reembed_lock:
        if now - _reembed_queued.get(project.pk, -REEMBED_REQUEST_WINDOW_SECONDS) < REEMBED_REQUEST_WINDOW_SECONDS:
            return
        _reembed_queued[project.pk] = now
    logger.warning(
        "knowledge search: the knowledge base was embedded with another model than %s; re-embedding it", model,
        extra={"project_id": project.pk},
    )  # fmt: skip
    from knowledge.tasks import knowledge_reembed_task  # tasks import this module

    knowledge_reembed_task.delay(project.pk)


def _search_through_owner(*, project: Project, query: str, top_k: int, url_filter: str | None) -> list[SearchHit]:
    """The embedded store belongs to the worker: ask it (raises when no worker answers in time)."""
    from knowledge.tasks import knowledge_search_task

    result = knowledge_search_task.delay(project.pk, query, top_k, url_filter)
    return [SearchHit(**hit) for hit in result.get(timeout=OWNER_SEARCH_TIMEOUT_SECONDS)]


def _query_sparse_vector(*, project: Project, query: str) -> SparseVector:
    stats = _bm25_stats(project=project)
    if stats is None:
        return _EMPTY_SPARSE  # never crawled with BM25: dense only
    return bm25_query_vector(analyze(query, stats.language), stats)


# --- BM25 statistics cache -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedStats:
    updated_at: datetime
    stats: BM25Stats


_stats_lock = threading.Lock()
_stats_cache: dict[int, _CachedStats] = {}  # project id -> the stats as of BM25Index.updated_at


def _bm25_stats(*, project: Project) -> BM25Stats | None:
    """The project's BM25 statistics, reloaded only when a crawl has saved new ones.

    One indexed lookup of `updated_at` per search instead of loading the whole vocabulary; a saved
    crawl bumps `updated_at` (auto_now), which invalidates the entry in every process.
    """
    updated_at = BM25Index.objects.filter(project=project).values_list("updated_at", flat=True).first()
    if updated_at is None:
        return None
    with _stats_lock:
        cached = _stats_cache.get(project.pk)
    if cached is not None and cached.updated_at == updated_at:
        return cached.stats
    stats = bm25_stats_load(project=project)
    if stats is None:
        return None
    with _stats_lock:
        _stats_cache[project.pk] = _CachedStats(updated_at=updated_at, stats=stats)
    return stats


def bm25_stats_cache_clear() -> None:
    with _stats_lock:
        _stats_cache.clear()


# --- tool output -----------------------------------------------------------------------------------------


def format_hits_for_model(hits: list[SearchHit]) -> str:
    """The text the agent's tool returns: numbered results with score, topic, URL and the chunk text."""
    if not hits:
        return "No results in the knowledge base for this query."
    blocks = [_format_hit(number, hit) for number, hit in enumerate(hits, start=1)]
    return "\n\n".join(blocks)


def _format_hit(number: int, hit: SearchHit) -> str:
    topic = hit.topic or "(no topic)"
    return f"[{number}] score {hit.score:.2f} | topic: {topic} | url: {hit.url}\n{hit.text.strip()}"
