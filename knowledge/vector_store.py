"""The knowledge base's Qdrant store: one collection per project and embedding model, hybrid queries.

Every point carries a named dense vector (cosine) and a named BM25 sparse vector; Qdrant applies the
IDF part of BM25 itself (`Modifier.IDF`), so documents send only the saturated term frequencies.

Tenant isolation: a project's points live only in its own collections (the project id is part of the
name), so a query can never reach another project's chunks. As a second line of defence against a
wrong collection name or a mislabelled point, the query functions take an optional `project_id` and
drop (and log) any hit whose payload says otherwise; `knowledge.search` always passes it. This is a
check on the at most few hits returned, not a Qdrant filter: a must-filter on `project_id` doubled
the local-mode query time (brute force evaluates it per point in Python: 17 -> 34 ms at 1k points,
180 -> 380 ms at 10k) for a condition that the collection already guarantees.

Hybrid scores come from Qdrant's DBSF fusion: each prefetch's scores are normalised against their own
distribution (mean ± 3 sigma) and summed, so a fused score says how much a chunk stands out among the
candidates of this query in both rankings (up to about 2), not an absolute similarity.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from knowledge.bm25 import SparseVector
from knowledge.qdrant_store import is_local_mode, qdrant

if TYPE_CHECKING:
    from qdrant_client import models
else:

    class _LazyModels:
        """`qdrant_client.models` on first use: the package takes 1-2 s to import (its gRPC and async
        clients), which every process start-up (web, commands) would pay for without a store call."""

        def __getattr__(self, name: str) -> Any:
            from qdrant_client import models

            return getattr(models, name)

    models = _LazyModels()

logger = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
HYBRID_MAX_RESULTS = 3  # the sales reference's server-side cap: the model reranks three results at most
PREFETCH_FACTOR = 2  # each prefetch returns limit * 2 candidates for the fusion
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
    from qdrant_client.http.exceptions import UnexpectedResponse  # imported with the client (see _LazyModels)

    name = collection_name(project_id=project_id, model_id=model_id, dim=dim)
    client = qdrant()
    if not client.collection_exists(name):
        try:
            client.create_collection(
                collection_name=name,
                vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
        except (UnexpectedResponse, ValueError):
            # Another worker created it between our check and our call (409 on a server, ValueError
            # in local mode); anything else is a real error.
            if not client.collection_exists(name):
                raise
    _payload_indexes_ensure(name)
    return name


def _payload_indexes_ensure(name: str) -> None:
    # Local mode has no payload indexes (it scans) and warns on each new one, so only a server gets
    # them. Creating an existing index is a no-op on the server, so a crash between the collection and
    # its indexes heals on the next call.
    if is_local_mode():
        return
    client = qdrant()
    client.create_payload_index(collection_name=name, field_name="url", field_schema=models.PayloadSchemaType.KEYWORD)


def collection_exists(*, collection: str) -> bool:
    return bool(qdrant().collection_exists(collection))


def collection_drop(*, collection: str) -> None:
    qdrant().delete_collection(collection)


# --- points ----------------------------------------------------------------------------------------------


def points_upsert(*, collection: str, points: list[ChunkPoint], batch_size: int = 50) -> None:
    client = qdrant()
    for start in range(0, len(points), batch_size):
        batch = points[start : start + batch_size]
        client.upsert(collection_name=collection, points=[_point_struct(point) for point in batch], wait=True)


def _point_struct(point: ChunkPoint) -> models.PointStruct:
    vectors: dict[str, Any] = {DENSE: point.dense}
    # An empty sparse vector is left out: the point then simply has no BM25 vector (Qdrant servers
    # have mis-parsed empty sparse vectors inside named-vector maps, qdrant/qdrant#4910).
    if point.sparse.indices:
        vectors[SPARSE] = _sparse(point.sparse)
    return models.PointStruct(id=point.point_id, vector=vectors, payload=point.payload)


def points_update_sparse(
    *, collection: str, vectors: dict[str, SparseVector], batch_size: int = UPDATE_BATCH_SIZE
) -> None:
    """Replace the BM25 vectors of existing points (after a crawl changed the corpus statistics)."""
    client = qdrant()
    items = list(vectors.items())
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        updates = [models.PointVectors(id=pid, vector={SPARSE: _sparse(vec)}) for pid, vec in batch if vec.indices]
        emptied = [pid for pid, vec in batch if not vec.indices]
        if updates:
            client.update_vectors(collection_name=collection, points=updates, wait=True)
        if emptied:
            client.delete_vectors(
                collection_name=collection, vectors=[SPARSE], points=models.PointIdsList(points=emptied), wait=True
            )


def points_delete_by_urls(*, collection: str, urls: list[str]) -> None:
    if not urls:
        return
    selector = models.FilterSelector(filter=_filter(urls=urls))
    qdrant().delete(collection_name=collection, points_selector=selector, wait=True)


def points_replace(*, collection: str, points: list[ChunkPoint], delete_ids: list[str]) -> None:
    """A changed page's swap: its new points and the removal of its old ones in one store request.

    Upsert comes first, so a search never finds the page missing; the embedded store applies the request
    under its lock (a search sees both operations or neither), and a search that still meets both versions
    on a server keeps only the newest version of each page (`_hits`).
    """
    operations: list[Any] = []
    if points:
        operations.append(models.UpsertOperation(upsert=models.PointsList(points=[_point_struct(p) for p in points])))
    if delete_ids:
        operations.append(models.DeleteOperation(delete=models.PointIdsList(points=list(delete_ids))))
    if operations:
        qdrant().batch_update_points(collection_name=collection, update_operations=operations, wait=True)


def points_delete_by_ids(*, collection: str, point_ids: list[str]) -> None:
    if point_ids:
        qdrant().delete(collection_name=collection, points_selector=models.PointIdsList(points=point_ids), wait=True)


def points_count(*, collection: str) -> int:
    return int(qdrant().count(collection_name=collection, exact=True).count)


# --- queries ---------------------------------------------------------------------------------------------


def hybrid_query(
    *,
    collection: str,
    dense: list[float],
    sparse: SparseVector,
    limit: int = 3,
    url_filter: str | None = None,
    min_score: float = 0.5,
    project_id: int | None = None,
) -> list[SearchHit]:
    """Dense + BM25 prefetches fused with DBSF; fused scores under `min_score` dropped; at most 3 hits.

    A sparse vector without terms (no query word is in the project's vocabulary) leaves only the dense
    prefetch, still normalised by DBSF so that scores and `min_score` keep one meaning.
    """
    capped = max(1, min(int(limit), HYBRID_MAX_RESULTS))
    prefetch = [models.Prefetch(query=dense, using=DENSE, limit=capped * PREFETCH_FACTOR)]
    if sparse.indices:
        prefetch.append(models.Prefetch(query=_sparse(sparse), using=SPARSE, limit=capped * PREFETCH_FACTOR))
    response = qdrant().query_points(
        collection_name=collection,
        prefetch=prefetch,
        query=models.FusionQuery(fusion=models.Fusion.DBSF),
        query_filter=_filter(url=url_filter),
        score_threshold=min_score,
        limit=capped,
        with_payload=True,
    )
    return _hits(response.points, project_id=project_id)


def dense_query(
    *,
    collection: str,
    dense: list[float],
    limit: int = 10,
    url_filter: str | None = None,
    project_id: int | None = None,
) -> list[SearchHit]:
    """Cosine similarity only, no threshold and no cap: a baseline for the search quality benchmark."""
    response = qdrant().query_points(
        collection_name=collection,
        query=dense,
        using=DENSE,
        query_filter=_filter(url=url_filter),
        limit=limit,
        with_payload=True,
    )
    return _hits(response.points, project_id=project_id)


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
    response = qdrant().query_points(
        collection_name=collection,
        query=_sparse(sparse),
        using=SPARSE,
        query_filter=_filter(url=url_filter),
        limit=limit,
        with_payload=True,
    )
    return _hits(response.points, project_id=project_id)


# --- conversions -----------------------------------------------------------------------------------------


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _filter(*, url: str | None = None, urls: list[str] | None = None) -> models.Filter | None:
    must: list[models.Condition] = []
    if url is not None:
        must.append(models.FieldCondition(key="url", match=models.MatchValue(value=url)))
    if urls:
        must.append(models.FieldCondition(key="url", match=models.MatchAny(any=list(urls))))
    return models.Filter(must=must) if must else None


def _hits(points: list[models.ScoredPoint], *, project_id: int | None) -> list[SearchHit]:
    points = _newest_page_versions(points)
    return [_hit(point) for point in points if project_id is None or _belongs_to(point, project_id)]


def _newest_page_versions(points: list[models.ScoredPoint]) -> list[models.ScoredPoint]:
    """While a changed page swaps its chunks, only its newest version among the hits is kept."""

    def page_and_version(point: models.ScoredPoint) -> tuple[Any, int]:
        payload = point.payload or {}
        return payload.get("page_id"), int(payload.get("page_version") or 0)

    newest: dict[Any, int] = {}
    for page, version in map(page_and_version, points):
        newest[page] = max(newest.get(page, 0), version)
    return [point for point in points if page_and_version(point)[1] == newest[page_and_version(point)[0]]]


def _belongs_to(point: models.ScoredPoint, project_id: int) -> bool:
    owner = (point.payload or {}).get("project_id")
    if owner == project_id:
        return True
    # Never shown to the model; loud because it means a collection holds another tenant's point.
    logger.error("qdrant point %s has project_id %r, expected %s: hit dropped", point.id, owner, project_id)
    return False


def _hit(point: models.ScoredPoint) -> SearchHit:
    payload = point.payload or {}
    return SearchHit(
        score=float(point.score),
        url=str(payload.get("url", "")),
        topic=str(payload.get("topic", "")),
        text=str(payload.get("text", "")),
        chunk_id=int(payload.get("chunk_id", 0)),
    )
