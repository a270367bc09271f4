"""Re-create vector collections from the stored chunks: after a restore, when the store was lost, on an upgrade.

Chunks keep their embeddings in the database and BM25 statistics are rows too, so the vector store holds
nothing that cannot be rebuilt; this goes through the pipeline's own point layout and store functions, so it
works whatever engine serves the store (a Qdrant server, the embedded one).

Upgrade: round 1's embedded store was qdrant-client's local mode (`meta.json` and `collection/` under
QDRANT_PATH); round 2's is Qdrant Edge (`edge/`). When the owner of an embedded Edge store starts and finds
local-mode data, or no Edge store rebuilt from the database yet (no `edge/REBUILT`), it rebuilds every
project's collection from PostgreSQL, moves the local-mode files aside to `local-mode-old/` (delete them
once the new store answers) and writes the marker. `manage.py knowledge_store_rebuild` does the same on demand.
"""

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from bots.llm.embeddings import embedding_model_id
from knowledge.bm25 import bm25_fit, bm25_stats_load, bm25_stats_save
from knowledge.edge_store import EDGE_DIR
from knowledge.models import Chunk
from knowledge.pipeline import UPLOAD_BATCH, _chunk_terms, _collection, _point
from knowledge.qdrant_store import embedded_engine_name
from knowledge.store_owner import store_is_embedded
from knowledge.vector_store import collection_drop, collection_optimize, points_upsert
from tenants.models import Project

logger = logging.getLogger(__name__)

REBUILT_MARKER = "REBUILT"
LOCAL_MODE_FILES = ("meta.json", "collection")
LOCAL_MODE_BACKUP = "local-mode-old"


def knowledge_store_rebuild(*, project: Project, index: bool = False) -> int:
    """Drop the project's collection for the current embedding model and upload every chunk embedded with it.

    Returns how many chunks were uploaded; chunks embedded with another model wait for the next crawl.
    `index` builds the embedded engine's HNSW indexes: it blocks the process, so only an offline command asks.
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
    if index:
        collection_optimize(collection=collection)
    Chunk.objects.filter(pk__in=[chunk.pk for chunk in corpus]).update(uploaded_at=timezone.now())
    logger.info("knowledge store rebuilt", extra={"project_id": project.pk, "chunks": len(corpus)})
    return len(corpus)


def knowledge_store_rebuild_all(*, index: bool = False) -> dict[int, int]:
    """Every project that has chunks: project id -> chunks uploaded."""
    project_ids = Chunk.objects.values_list("project_id", flat=True).distinct().order_by("project_id")
    projects = Project.objects.filter(pk__in=project_ids).order_by("pk")
    return {project.pk: knowledge_store_rebuild(project=project, index=index) for project in projects}


def store_upgrade_reason(*, path: str | None = None) -> str | None:
    """Why the embedded Edge store at `path` must be rebuilt from the database, or None when it need not be."""
    if not store_is_embedded() or embedded_engine_name() != "edge":
        return None
    root = Path(path or settings.QDRANT_PATH)
    if any((root / name).exists() for name in LOCAL_MODE_FILES):
        return f"local-mode data found at {root} (the round 1 engine)"
    if not (root / EDGE_DIR / REBUILT_MARKER).is_file():
        return f"no Qdrant Edge store rebuilt from the database at {root / EDGE_DIR}"
    return None


def store_upgrade(*, path: str | None = None, index: bool = False) -> dict[int, int]:
    """Rebuild every collection in the Edge store, move local-mode files aside, mark the store rebuilt."""
    root = Path(path or settings.QDRANT_PATH)
    rebuilt = knowledge_store_rebuild_all(index=index)
    if not store_is_embedded() or embedded_engine_name() != "edge":
        return rebuilt
    backup = root / LOCAL_MODE_BACKUP
    for name in LOCAL_MODE_FILES:
        if (root / name).exists():
            backup.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(backup / name, ignore_errors=True)
            (root / name).rename(backup / name)
    (root / EDGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / EDGE_DIR / REBUILT_MARKER).write_text(f"{timezone.now().isoformat()} {sum(rebuilt.values())} chunks\n")
    logger.info(
        "embedded store upgraded to Qdrant Edge", extra={"projects": len(rebuilt), "chunks": sum(rebuilt.values())}
    )
    return rebuilt


def store_upgrade_if_needed() -> dict[int, int] | None:
    """At the owner's start: rebuild when `store_upgrade_reason` says so; None when nothing was to do."""
    reason = store_upgrade_reason()
    if reason is None:
        return None
    logger.warning("rebuilding the embedded vector store from the database: %s", reason)
    return store_upgrade()
