"""The store's engines and the one factory: a Qdrant server (QDRANT_URL) or the embedded store (QDRANT_PATH).

- `QDRANT_URL` set: a Qdrant server through qdrant-client (`ClientEngine`).
- unset: the embedded store under `QDRANT_PATH`, Qdrant Edge by default (`knowledge.edge_store`); with
  `QDRANT_EMBEDDED_ENGINE=local`, qdrant-client's local mode (round 1's brute-force store, kept for
  comparison and as a way back).
`:memory:` (the tests) is an embedded store in a temporary directory.

The embedded engines allow one process per storage path, so the engine is created lazily per process
(never at import time) and every call goes through a lock. In embedded mode only the store's owner
process (the worker) opens it (`knowledge.store_owner`).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

from knowledge.bm25 import SparseVector
from knowledge.edge_store import DENSE, SPARSE, EdgeEngine, RawHit, StoredPoint, score_rrf_hits
from knowledge.fusion import HybridFusion

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

    from knowledge.vector_store import ChunkPoint

_lock = threading.RLock()
_engine: EdgeEngine | ClientEngine | None = None
_engine_pid: int | None = None


def is_local_mode() -> bool:
    """True for any embedded store (no Qdrant server)."""
    return not settings.QDRANT_URL


def embedded_engine_name() -> str:
    return "server" if settings.QDRANT_URL else str(getattr(settings, "QDRANT_EMBEDDED_ENGINE", "edge") or "edge")


def _models() -> Any:
    from qdrant_client import models

    return models


class ClientEngine:
    """qdrant-client: a Qdrant server, or local mode (brute force in Python) on a path or in memory."""

    def __init__(self, client: QdrantClient, *, server: bool) -> None:
        self.client, self.server = client, server
        self._lock = threading.RLock()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:  # local mode corrupts itself under concurrent writes from threads
            return getattr(self.client, name)(*args, **kwargs)

    def exists(self, name: str) -> bool:
        return bool(self._call("collection_exists", name))

    def names(self) -> list[str]:
        return sorted(c.name for c in self._call("get_collections").collections)

    def create(self, name: str, dim: int) -> None:
        from qdrant_client.http.exceptions import UnexpectedResponse

        m = _models()
        if not self.exists(name):
            try:
                self._call(
                    "create_collection",
                    collection_name=name,
                    vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                    sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
                )
            except (UnexpectedResponse, ValueError):
                # Another worker created it between our check and our call (409 on a server, ValueError
                # in local mode); anything else is a real error.
                if not self.exists(name):
                    raise
        # Local mode has no payload indexes (it scans) and warns on each new one. Creating an existing
        # index is a no-op on a server, so a crash between the collection and its index heals here.
        if self.server:
            self._call("create_payload_index", collection_name=name, field_name="url",
                       field_schema=m.PayloadSchemaType.KEYWORD)  # fmt: skip

    def drop(self, name: str) -> None:
        self._call("delete_collection", name)

    def dim(self, name: str) -> int:
        return int(self._call("get_collection", name).config.params.vectors[DENSE].size)

    def optimize(self, name: str) -> None:
        """A server indexes in the background; local mode has no index."""

    def close(self) -> None:
        self._call("close")

    def upsert(self, name: str, points: list[ChunkPoint]) -> None:
        if points:
            self._call("upsert", collection_name=name, points=[_point_struct(p) for p in points], wait=True)

    def replace(self, name: str, points: list[ChunkPoint], delete_ids: list[str]) -> None:
        m = _models()
        operations: list[Any] = []
        if points:
            operations.append(m.UpsertOperation(upsert=m.PointsList(points=[_point_struct(p) for p in points])))
        if delete_ids:
            operations.append(m.DeleteOperation(delete=m.PointIdsList(points=list(delete_ids))))
        if operations:
            self._call("batch_update_points", collection_name=name, update_operations=operations, wait=True)

    def update_sparse(self, name: str, vectors: dict[str, SparseVector]) -> None:
        m = _models()
        updates = [m.PointVectors(id=pid, vector={SPARSE: _sparse(vec)}) for pid, vec in vectors.items() if vec.indices]
        emptied = [pid for pid, vec in vectors.items() if not vec.indices]
        if updates:
            self._call("update_vectors", collection_name=name, points=updates, wait=True)
        if emptied:
            self._call("delete_vectors", collection_name=name, vectors=[SPARSE],
                       points=m.PointIdsList(points=emptied), wait=True)  # fmt: skip

    def delete_ids(self, name: str, point_ids: list[str]) -> None:
        if point_ids:
            self._call("delete", collection_name=name, points_selector=_models().PointIdsList(points=point_ids),
                       wait=True)  # fmt: skip

    def delete_urls(self, name: str, urls: list[str]) -> None:
        if urls:
            selector = _models().FilterSelector(filter=_filter(urls=urls))
            self._call("delete", collection_name=name, points_selector=selector, wait=True)

    def set_payload(self, name: str, point_ids: list[str], payload: dict[str, Any]) -> None:
        self._call("set_payload", name, payload=payload, points=list(point_ids))

    def count(self, name: str) -> int:
        return int(self._call("count", collection_name=name, exact=True).count)

    def hybrid(
        self, name: str, *, dense: list[float], sparse: SparseVector, limit: int, url: str | None, fusion: HybridFusion
    ) -> list[RawHit]:
        if fusion.method == "score_rrf":
            return score_rrf_hits(self, name, dense=dense, sparse=sparse, limit=limit, url=url, fusion=fusion)
        m = _models()
        prefetch = [m.Prefetch(query=dense, using=DENSE, limit=fusion.prefetch_limit)]
        if sparse.indices:
            prefetch.append(m.Prefetch(query=_sparse(sparse), using=SPARSE, limit=fusion.prefetch_limit))
        if fusion.method == "rrf":
            query: Any = m.RrfQuery(rrf=m.Rrf(k=fusion.rrf_k, weights=list(fusion.weights[: len(prefetch)])))
        else:
            query = m.FusionQuery(fusion=m.Fusion.DBSF)
        response = self._call(
            "query_points", collection_name=name, prefetch=prefetch, query=query, query_filter=_filter(url=url),
            score_threshold=fusion.min_score, limit=limit, with_payload=True,
        )  # fmt: skip
        return _raw(response.points)

    def nearest(self, name: str, *, dense: list[float], limit: int, url: str | None) -> list[RawHit]:
        response = self._call("query_points", collection_name=name, query=dense, using=DENSE,
                              query_filter=_filter(url=url), limit=limit, with_payload=True)  # fmt: skip
        return _raw(response.points)

    def nearest_sparse(self, name: str, *, sparse: SparseVector, limit: int, url: str | None) -> list[RawHit]:
        response = self._call("query_points", collection_name=name, query=_sparse(sparse), using=SPARSE,
                              query_filter=_filter(url=url), limit=limit, with_payload=True)  # fmt: skip
        return _raw(response.points)

    def retrieve(self, name: str, point_ids: list[str]) -> list[StoredPoint]:
        return [_stored(r) for r in self._call("retrieve", name, list(point_ids), with_vectors=True)]

    def scroll(self, name: str) -> list[StoredPoint]:
        found: list[StoredPoint] = []
        offset = None
        while True:
            records, offset = self._call("scroll", name, limit=1000, offset=offset, with_vectors=True)
            found += [_stored(r) for r in records]
            if offset is None:
                return found


def _sparse(vector: SparseVector) -> models.SparseVector:
    return _models().SparseVector(indices=list(vector.indices), values=list(vector.values))


def _point_struct(point: ChunkPoint) -> models.PointStruct:
    vectors: dict[str, Any] = {DENSE: point.dense}
    # An empty sparse vector is left out: the point then simply has no BM25 vector (Qdrant servers
    # have mis-parsed empty sparse vectors inside named-vector maps, qdrant/qdrant#4910).
    if point.sparse.indices:
        vectors[SPARSE] = _sparse(point.sparse)
    return _models().PointStruct(id=point.point_id, vector=vectors, payload=point.payload)


def _filter(*, url: str | None = None, urls: list[str] | None = None) -> models.Filter | None:
    m = _models()
    must: list[Any] = []
    if url is not None:
        must.append(m.FieldCondition(key="url", match=m.MatchValue(value=url)))
    if urls:
        must.append(m.FieldCondition(key="url", match=m.MatchAny(any=list(urls))))
    return m.Filter(must=must) if must else None


def _raw(points: list[Any]) -> list[RawHit]:
    return [RawHit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


def _stored(record: Any) -> StoredPoint:
    vector = record.vector or {}
    sparse = vector.get(SPARSE)
    return StoredPoint(
        point_id=str(record.id),
        dense=list(vector.get(DENSE) or []),
        sparse=SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        payload=dict(record.payload or {}),
    )


def _build_engine() -> EdgeEngine | ClientEngine:
    if settings.QDRANT_URL:
        from qdrant_client import QdrantClient  # 1-2 s to import: only a process that opens the store pays

        client = QdrantClient(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY or None, timeout=10)
        return ClientEngine(client, server=True)
    if embedded_engine_name() == "local":
        from qdrant_client import QdrantClient

        if settings.QDRANT_PATH == ":memory:":
            return ClientEngine(QdrantClient(location=":memory:"), server=False)
        os.makedirs(settings.QDRANT_PATH, exist_ok=True)
        return ClientEngine(QdrantClient(path=settings.QDRANT_PATH), server=False)
    return EdgeEngine(settings.QDRANT_PATH)


def store_engine() -> EdgeEngine | ClientEngine:
    """This process's engine (opened on first use, again after a fork)."""
    global _engine, _engine_pid
    with _lock:
        if _engine is None or _engine_pid != os.getpid():
            _engine, _engine_pid = _build_engine(), os.getpid()
        return _engine


def qdrant_close() -> None:
    """Release the store (the embedded engines hold a lock on their path; `:memory:` is emptied)."""
    global _engine, _engine_pid
    with _lock:
        if _engine is not None and _engine_pid == os.getpid():
            _engine.close()
        _engine, _engine_pid = None, None


# Close before interpreter teardown: the local client's __del__ fails noisily once imports are gone.
atexit.register(qdrant_close)
