"""The embedded vector store on Qdrant Edge (`qdrant-edge-py`): Qdrant's engine inside this process.

Each collection is one Edge shard, a directory `QDRANT_PATH/edge/<collection>/` holding the named dense
vector (cosine), the named BM25 sparse vector (IDF applied by the engine) and the payloads. A shard can
be opened by one process at a time (a second one fails with "Can't init WAL: WouldBlock"), which is why
the store has one owner process (`knowledge.store_owner`); inside it, every call takes one lock, so a
page swap (upsert, then delete of the old version) is seen by a search as a whole or not at all.

The tests' `QDRANT_PATH=:memory:` is a temporary directory removed when the store closes.
Segments are searched exactly (a SIMD scan in Rust: about 1-2 ms at 10k points, 12-20 ms at 100k) until
`optimize` builds their HNSW index. `optimize` holds the GIL and the shard for its whole run (minutes at
100k points), which would stop every turn of the owner worker, so only `manage.py knowledge_store_rebuild`
(run with the worker stopped) indexes; crawls and the automatic upgrade leave the segments to exact search.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from knowledge.bm25 import SparseVector
from knowledge.fusion import HybridFusion
from knowledge.store_owner import StoreOwnedElsewhere, store_owner_pid

if TYPE_CHECKING:
    import qdrant_edge as edge

    from knowledge.vector_store import ChunkPoint

EDGE_DIR = "edge"
DENSE = "dense"
SPARSE = "bm25"
# `optimize` indexes a segment with HNSW once it holds this many kilobytes of vectors (Qdrant's default is
# 10 000, about 5 000 vectors of 512 floats): under it, an exact scan in Rust takes about 1-2 ms.
INDEXING_THRESHOLD_KB = 20_000

T = TypeVar("T")


@dataclass(frozen=True)
class RawHit:
    point_id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredPoint:
    point_id: str
    dense: list[float]
    sparse: SparseVector | None
    payload: dict[str, Any]


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


class EdgeEngine:
    """Every collection's shard under one root directory, opened on first use, closed together."""

    def __init__(self, path: str) -> None:
        self._temporary = path == ":memory:"
        root = Path(tempfile.mkdtemp(prefix="switchboard-edge-")) if self._temporary else Path(path)
        self.root = root
        self.shards_dir = root / EDGE_DIR
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._shards: dict[str, edge.EdgeShard] = {}

    # --- shards ------------------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid collection name {name!r}")
        return self.shards_dir / name

    def _shard(self, name: str) -> edge.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            if not self.exists(name):
                raise LookupError(f"collection {name} does not exist")
            try:
                shard = _edge().EdgeShard.load(str(self._dir(name)))
            except Exception as exc:
                if "WouldBlock" not in str(exc):
                    raise
                # Another process has this shard open: say who, as the owner check does.
                raise StoreOwnedElsewhere(path=str(self.root), pid=store_owner_pid(path=str(self.root))) from None
            self._shards[name] = shard
        return shard

    def _locked(self, function: Callable[[], T]) -> T:
        with self._lock:
            return function()

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "edge_config.json").is_file()

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.shards_dir.glob("*/edge_config.json"))

    def create(self, name: str, dim: int) -> None:
        q = _edge()
        with self._lock:
            if self.exists(name):
                return
            config = q.EdgeConfig(
                vectors={DENSE: q.EdgeVectorParams(size=int(dim), distance=q.Distance.Cosine)},
                sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
                optimizers=q.EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB),
            )
            shard_dir = self._dir(name)
            if shard_dir.exists():  # a creation that crashed before its config was written
                shutil.rmtree(shard_dir)
            self._shards[name] = q.EdgeShard.create(str(shard_dir), config)
            self._shards[name].update(q.UpdateOperation.create_field_index("url", q.PayloadSchemaType.Keyword))

    def drop(self, name: str) -> None:
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._dir(name), ignore_errors=True)

    def dim(self, name: str) -> int:
        config = json.loads((self._dir(name) / "edge_config.json").read_text())
        return int(config["vectors"][DENSE]["size"])

    def optimize(self, name: str) -> None:
        """Build the HNSW indexes of segments over the threshold: blocks this process (GIL held) meanwhile."""
        with self._lock:
            shard = self._shard(name)
        shard.optimize()

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if self._temporary:
                shutil.rmtree(self.root, ignore_errors=True)

    # --- writes ------------------------------------------------------------------------------------------

    def upsert(self, name: str, points: list[ChunkPoint]) -> None:
        if points:
            operation = _edge().UpdateOperation.upsert_points([_point(p) for p in points])
            self._locked(lambda: self._shard(name).update(operation))

    def replace(self, name: str, points: list[ChunkPoint], delete_ids: list[str]) -> None:
        q = _edge()
        operations = []
        if points:
            operations.append(q.UpdateOperation.upsert_points([_point(p) for p in points]))
        if delete_ids:
            operations.append(q.UpdateOperation.delete_points([_id(i) for i in delete_ids]))
        with self._lock:  # searches take the same lock: they see both operations or neither
            shard = self._shard(name)
            for operation in operations:
                shard.update(operation)

    def update_sparse(self, name: str, vectors: dict[str, SparseVector]) -> None:
        q = _edge()
        updates = [q.PointVectors(_id(pid), {SPARSE: _sparse(vec)}) for pid, vec in vectors.items() if vec.indices]
        emptied = [_id(pid) for pid, vec in vectors.items() if not vec.indices]
        with self._lock:
            shard = self._shard(name)
            if updates:
                shard.update(q.UpdateOperation.update_vectors(updates))
            if emptied:
                shard.update(q.UpdateOperation.delete_vectors(emptied, [SPARSE]))

    def delete_ids(self, name: str, point_ids: list[str]) -> None:
        if point_ids:
            operation = _edge().UpdateOperation.delete_points([_id(i) for i in point_ids])
            self._locked(lambda: self._shard(name).update(operation))

    def delete_urls(self, name: str, urls: list[str]) -> None:
        if urls:
            operation = _edge().UpdateOperation.delete_points_by_filter(_filter(urls=urls))
            self._locked(lambda: self._shard(name).update(operation))

    def set_payload(self, name: str, point_ids: list[str], payload: dict[str, Any]) -> None:
        operation = _edge().UpdateOperation.set_payload([_id(i) for i in point_ids], payload)
        self._locked(lambda: self._shard(name).update(operation))

    # --- reads -------------------------------------------------------------------------------------------

    def count(self, name: str) -> int:
        request = _edge().CountRequest(exact=True)
        return int(self._locked(lambda: self._shard(name).count(request)))

    def hybrid(
        self, name: str, *, dense: list[float], sparse: SparseVector, limit: int, url: str | None, fusion: HybridFusion
    ) -> list[RawHit]:
        if fusion.method == "score_rrf":
            return score_rrf_hits(self, name, dense=dense, sparse=sparse, limit=limit, url=url, fusion=fusion)
        q = _edge()
        prefetches = [q.Prefetch(fusion.prefetch_limit, query=q.Query.Nearest(dense, using=DENSE))]
        if sparse.indices:
            prefetches.append(q.Prefetch(fusion.prefetch_limit, query=q.Query.Nearest(_sparse(sparse), using=SPARSE)))
        if fusion.method == "rrf":
            weights = list(fusion.weights[: len(prefetches)])
            fused = q.Fusion.Rrf(fusion.rrf_k, weights=weights)
        else:
            fused = q.Fusion.Dbsf()
        request = q.QueryRequest(
            limit, query=fused, prefetches=prefetches, filter=_filter(url=url),
            score_threshold=fusion.min_score, with_payload=True,
        )  # fmt: skip
        return self._query(name, request)

    def nearest(self, name: str, *, dense: list[float], limit: int, url: str | None) -> list[RawHit]:
        q = _edge()
        query = q.Query.Nearest(dense, using=DENSE)
        return self._query(name, q.QueryRequest(limit, query=query, filter=_filter(url=url), with_payload=True))

    def nearest_sparse(self, name: str, *, sparse: SparseVector, limit: int, url: str | None) -> list[RawHit]:
        q = _edge()
        query = q.Query.Nearest(_sparse(sparse), using=SPARSE)
        return self._query(name, q.QueryRequest(limit, query=query, filter=_filter(url=url), with_payload=True))

    def _query(self, name: str, request: Any) -> list[RawHit]:
        points = self._locked(lambda: self._shard(name).query(request))
        return [RawHit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def retrieve(self, name: str, point_ids: list[str]) -> list[StoredPoint]:
        ids = [_id(i) for i in point_ids]
        records = self._locked(lambda: self._shard(name).retrieve(ids, True, True))
        return [_stored(record) for record in records]

    def scroll(self, name: str) -> list[StoredPoint]:
        q = _edge()
        found: list[StoredPoint] = []
        offset = None
        while True:
            request = q.ScrollRequest(offset=offset, limit=1000, with_payload=True, with_vector=True)
            records, offset = self._locked(lambda request=request: self._shard(name).scroll(request))
            found += [_stored(record) for record in records]
            if offset is None:
                return found


def score_rrf_hits(
    engine: Any,
    name: str,
    *,
    dense: list[float],
    sparse: SparseVector,
    limit: int,
    url: str | None,
    fusion: HybridFusion,
) -> list[RawHit]:
    """The "score_rrf" fusion for any engine: its dense and BM25 rankings fused here, each adding
    `weight / (k + rank)` (rank from 1) to a point's score; Qdrant's own RRF divides the rank by the weight
    instead (`knowledge.fusion`). Equal sums keep the dense order (counted first, stable sort)."""
    rankings = [(engine.nearest(name, dense=dense, limit=fusion.prefetch_limit, url=url), fusion.weights[0])]
    if sparse.indices:
        bm25 = engine.nearest_sparse(name, sparse=sparse, limit=fusion.prefetch_limit, url=url)
        rankings.append((bm25, fusion.weights[1]))
    fused: dict[str, float] = {}
    payloads: dict[str, dict[str, Any]] = {}
    for ranking, weight in rankings:
        for rank, point in enumerate(ranking, start=1):
            fused[point.point_id] = fused.get(point.point_id, 0.0) + weight / (fusion.rrf_k + rank)
            payloads.setdefault(point.point_id, point.payload)
    ordered = sorted(fused, key=lambda point_id: -fused[point_id])
    kept = [point_id for point_id in ordered if fused[point_id] >= fusion.min_score][:limit]
    return [RawHit(point_id, fused[point_id], payloads[point_id]) for point_id in kept]


# --- conversions -----------------------------------------------------------------------------------------


def _id(point_id: str) -> str:
    return str(uuid.UUID(str(point_id)))


def _sparse(vector: SparseVector) -> Any:
    return _edge().SparseVector(list(vector.indices), list(vector.values))


def _point(point: ChunkPoint) -> Any:
    vectors: dict[str, Any] = {DENSE: list(point.dense)}
    if point.sparse.indices:
        vectors[SPARSE] = _sparse(point.sparse)
    return _edge().Point(_id(point.point_id), vectors, point.payload)


def _filter(*, url: str | None = None, urls: list[str] | None = None) -> Any:
    q = _edge()
    must = []
    if url is not None:
        must.append(q.FieldCondition("url", match=q.MatchValue(url)))
    if urls:
        must.append(q.FieldCondition("url", match=q.MatchAny(list(urls))))
    return q.Filter(must=must) if must else None


def _stored(record: Any) -> StoredPoint:
    vector = record.vector or {}
    sparse = vector.get(SPARSE)
    return StoredPoint(
        point_id=str(record.id),
        dense=list(vector.get(DENSE) or []),
        sparse=SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        payload=dict(record.payload or {}),
    )
