"""The knowledge base's vector store: one collection per project and embedding model, hybrid queries.

Every point carries a named dense vector (cosine) and a named BM25 sparse vector; Qdrant applies the
IDF part of BM25 itself (`Modifier.IDF`), so documents send only the saturated term frequencies.
The functions below are the store's one interface; `knowledge.qdrant_store.store_engine` picks the engine
(a Qdrant server with QDRANT_URL, else the embedded Qdrant Edge store under QDRANT_PATH).

Tenant isolation: a project's points live only in its own collections (the project id is part of the
name), so a query can never reach another project's chunks. As a second line of defence against a
wrong collection name or a mislabelled point, the query functions take an optional `project_id` and
drop (and log) any hit whose payload says otherwise; `knowledge.search` always passes it. This is a
check on the at most few hits returned, not a filter: the collection already guarantees it, and
round 1's brute-force local mode paid double per query for the filter.

Hybrid scores come from Qdrant's fusion with the parameters of `knowledge.fusion` (DBSF by default: each
prefetch's scores are normalised against their own distribution, mean ± 3 sigma, and summed, so a fused
score says how much a chunk stands out among the candidates of this query in both rankings, up to about
2, not an absolute similarity).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from knowledge.bm25 import SparseVector
from knowledge.edge_store import DENSE as DENSE
from knowledge.edge_store import SPARSE as SPARSE
from knowledge.edge_store import RawHit, StoredPoint
from knowledge.fusion import HYBRID_FUSION, HybridFusion
from knowledge.fusion import HYBRID_MAX_RESULTS as HYBRID_MAX_RESULTS
from knowledge.qdrant_store import store_engine

logger = logging.getLogger(__name__)

UPDATE_BATCH_SIZE = 100
_SLUG_MAX = 40


@dataclass(frozen=True)
class ChunkPoint:
    point_id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]  # project_id, chunk_id, page_id, page_version, url, topic, text


@dataclass(frozen=True)
class SearchHit:
    score: float
    url: str
    topic: str
    text: str
    chunk_id: int


# --- collections -----------------------------------------------------------------------------------------


def collection_name(*, project_id: int, model_id: str, dim: int) -> str:
    """`p{project}_{model slug}_{hash}_{dim}`: vectors of different models never share a collection.

    The slug keeps names readable in the Qdrant dashboard; the short hash of the exact model id keeps
    two ids that slug alike ("a/b-c" and "a_b/c") apart.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower()).strip("_")[:_SLUG_MAX] or "model"
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:6]
    return f"p{int(project_id)}_{slug}_{digest}_{int(dim)}"


def collection_ensure(*, project_id: int, model_id: str, dim: int) -> str:
    """Create the collection if missing (idempotent, safe when two workers race) and return its name."""
    name = collection_name(project_id=project_id, model_id=model_id, dim=dim)
    store_engine().create(name, dim)
    return name


def collection_exists(*, collection: str) -> bool:
    return bool(store_engine().exists(collection))


def collection_drop(*, collection: str) -> None:
    store_engine().drop(collection)


def collection_dim(*, collection: str) -> int:
    return store_engine().dim(collection)


def collection_names() -> list[str]:
    return store_engine().names()


def collection_optimize(*, collection: str) -> None:
    """The embedded engine builds its HNSW indexes (blocking the process: offline only); a server does it itself."""
    store_engine().optimize(collection)


# --- points ----------------------------------------------------------------------------------------------


def points_upsert(*, collection: str, points: list[ChunkPoint], batch_size: int = 50) -> None:
    engine = store_engine()
    for start in range(0, len(points), batch_size):
        engine.upsert(collection, points[start : start + batch_size])


def points_update_sparse(
    *, collection: str, vectors: dict[str, SparseVector], batch_size: int = UPDATE_BATCH_SIZE
) -> None:
    """Replace the BM25 vectors of existing points (after a crawl changed the corpus statistics)."""
    engine = store_engine()
    items = list(vectors.items())
    for start in range(0, len(items), batch_size):
        engine.update_sparse(collection, dict(items[start : start + batch_size]))


def points_delete_by_urls(*, collection: str, urls: list[str]) -> None:
    if urls:
        store_engine().delete_urls(collection, list(urls))


def points_replace(*, collection: str, points: list[ChunkPoint], delete_ids: list[str]) -> None:
    """A changed page's swap: its new points and the removal of its old ones in one store request.

    Upsert comes first, so a search never finds the page missing; the embedded store applies the request
    under its lock (a search sees both operations or neither), and a search that still meets both versions
    on a server keeps only the newest version of each page (`_hits`).
    """
    if points or delete_ids:
        store_engine().replace(collection, list(points), list(delete_ids))


def points_delete_by_ids(*, collection: str, point_ids: list[str]) -> None:
    if point_ids:
        store_engine().delete_ids(collection, list(point_ids))


def points_count(*, collection: str) -> int:
    return store_engine().count(collection)


def points_retrieve(*, collection: str, point_ids: list[str]) -> list[StoredPoint]:
    return store_engine().retrieve(collection, [str(i) for i in point_ids])


def points_all(*, collection: str) -> list[StoredPoint]:
    return store_engine().scroll(collection)


def points_set_payload(*, collection: str, point_ids: list[str], payload: dict[str, Any]) -> None:
    store_engine().set_payload(collection, [str(i) for i in point_ids], payload)


# --- queries ---------------------------------------------------------------------------------------------


def hybrid_query(
    *,
    collection: str,
    dense: list[float],
    sparse: SparseVector,
    limit: int = HYBRID_MAX_RESULTS,
    url_filter: str | None = None,
    min_score: float | None = None,
    project_id: int | None = None,
    fusion: HybridFusion | None = None,
) -> list[SearchHit]:
    """Dense + BM25 prefetches fused (`knowledge.fusion`); fused scores under the minimum dropped; at most 3 hits.

    A sparse vector without terms (no query word is in the project's vocabulary) leaves only the dense
    prefetch, still normalised by the fusion so that scores and the minimum keep one meaning.
    """
    fusion = fusion or HYBRID_FUSION
    if min_score is not None:
        fusion = HybridFusion(**{**fusion.__dict__, "min_score": float(min_score)})
    capped = max(1, min(int(limit), HYBRID_MAX_RESULTS))
    raw = store_engine().hybrid(collection, dense=dense, sparse=sparse, limit=capped, url=url_filter, fusion=fusion)
    return _hits(raw, project_id=project_id)


def dense_query(
    *,
    collection: str,
    dense: list[float],
    limit: int = 10,
    url_filter: str | None = None,
    project_id: int | None = None,
) -> list[SearchHit]:
    """Cosine similarity only, no threshold and no cap: a baseline for the search quality benchmark."""
    return _hits(store_engine().nearest(collection, dense=dense, limit=limit, url=url_filter), project_id=project_id)


def sparse_query(
    *,
    collection: str,
    sparse: SparseVector,
    limit: int = 10,
    url_filter: str | None = None,
    project_id: int | None = None,
) -> list[SearchHit]:
    """BM25 only (IDF applied by Qdrant), no threshold and no cap: the other benchmark baseline."""
    if not sparse.indices:
        return []
    raw = store_engine().nearest_sparse(collection, sparse=sparse, limit=limit, url=url_filter)
    return _hits(raw, project_id=project_id)


# --- conversions -----------------------------------------------------------------------------------------


def _hits(points: list[RawHit], *, project_id: int | None) -> list[SearchHit]:
    points = _newest_page_versions(points)
    return [_hit(point) for point in points if project_id is None or _belongs_to(point, project_id)]


def _newest_page_versions(points: list[RawHit]) -> list[RawHit]:
    """While a changed page swaps its chunks, only its newest version among the hits is kept."""

    def page_and_version(point: RawHit) -> tuple[Any, int]:
        return point.payload.get("page_id"), int(point.payload.get("page_version") or 0)

    newest: dict[Any, int] = {}
    for page, version in map(page_and_version, points):
        newest[page] = max(newest.get(page, 0), version)
    return [point for point in points if page_and_version(point)[1] == newest[page_and_version(point)[0]]]


def _belongs_to(point: RawHit, project_id: int) -> bool:
    owner = point.payload.get("project_id")
    if owner == project_id:
        return True
    # Never shown to the model; loud because it means a collection holds another tenant's point.
    logger.error("qdrant point %s has project_id %r, expected %s: hit dropped", point.point_id, owner, project_id)
    return False


def _hit(point: RawHit) -> SearchHit:
    payload = point.payload
    return SearchHit(
        score=float(point.score),
        url=str(payload.get("url", "")),
        topic=str(payload.get("topic", "")),
        text=str(payload.get("text", "")),
        chunk_id=int(payload.get("chunk_id", 0)),
    )
