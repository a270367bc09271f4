"""Hybrid search latency at 1k, 10k and 100k chunks per engine: the embedded Qdrant Edge store, round 1's
qdrant-client local mode (1k and 10k only: a brute-force scan in Python, about 1.6 s per search at 100k),
and a Qdrant server when BENCH_QDRANT_URL is set.

Chunks are made of the bundled demo site's real sentences (3-6 per chunk, shuffled); each chunk's dense
vector is the normalised mean of its sentences' offline-encoder vectors, so the collection looks like a
crawled one without encoding 10k chunks. The BM25 statistics are fitted and saved as a crawl does.
Each query is the real path of the `hybrid_search` tool: embed the question (offline encoder), build its
BM25 vector, one Qdrant query with dense + BM25 prefetches fused by DBSF.
"""

import json
import os
import random
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from bots.llm.embeddings import OFFLINE_DIM, OFFLINE_MODEL_ID, embed_texts
from bots.llm.types import CallContext
from console.demo import DEMO_SITE
from knowledge.bm25 import analyze, bm25_document_vector, bm25_fit, bm25_query_vector, bm25_stats_save
from knowledge.qdrant_store import qdrant_close
from knowledge.search import bm25_stats_cache_clear, knowledge_search
from knowledge.store_owner import store_owner_claim, store_owner_release
from knowledge.vector_store import ChunkPoint, collection_ensure, collection_optimize, hybrid_query, points_upsert
from tests.benchmarks.profiling import profiled
from tests.benchmarks.report import figure, note, percentile
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

BENCHMARK = "Hybrid search latency"
SIZES = {"edge": (1_000, 10_000, 100_000), "local": (1_000, 10_000), "server": (1_000, 10_000, 100_000)}
ENGINES = ["edge", "local", pytest.param("server", marks=pytest.mark.skipif(
    not os.environ.get("BENCH_QDRANT_URL"), reason="set BENCH_QDRANT_URL to measure a Qdrant server"))]  # fmt: skip
QUESTIONS = Path(__file__).resolve().parent / "retrieval_questions.json"


def demo_sentences() -> list[str]:
    sentences = []
    for page in sorted((DEMO_SITE / "en").glob("*.html")):
        text = re.sub(r"<[^>]+>", " ", page.read_text())
        sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)) if len(s.strip()) > 30]
    return sentences


@pytest.fixture(params=ENGINES)
def qdrant_store(request, tmp_path, settings):
    engine = request.param
    settings.QDRANT_URL = os.environ.get("BENCH_QDRANT_URL", "") if engine == "server" else ""
    settings.QDRANT_EMBEDDED_ENGINE = "local" if engine == "local" else "edge"
    settings.QDRANT_PATH = str(tmp_path / "qdrant")
    qdrant_close()
    if engine != "server":
        store_owner_claim()  # this process stands in for the worker that owns the embedded store
    yield engine
    qdrant_close()
    store_owner_release()


@pytest.mark.timeout(3600)  # 100k chunks: the corpus, its BM25 fit and the upload take minutes
def test_hybrid_search_latency(qdrant_store):
    engine = qdrant_store
    label = {"edge": "Qdrant Edge", "local": "local mode", "server": "Qdrant server"}[engine]
    project = ProjectFactory(language="en")
    rng = random.Random(7)
    sentences = demo_sentences()
    sentence_vectors = np.array(embed_texts(sentences).vectors, dtype=np.float32)
    questions = [q["question"] for q in json.loads(QUESTIONS.read_text()) if q["language"] == "en"]
    collection = collection_ensure(project_id=project.pk, model_id=OFFLINE_MODEL_ID, dim=OFFLINE_DIM)

    texts: list[str] = []
    dense: list[list[float]] = []
    uploaded = 0
    for size in SIZES[engine]:
        while len(texts) < size:
            picked = rng.sample(range(len(sentences)), rng.randint(3, 6))
            texts.append(" ".join(sentences[i] for i in picked))
            mean = sentence_vectors[picked].mean(axis=0)
            dense.append((mean / np.linalg.norm(mean)).tolist())
        terms = [analyze(text, "en") for text in texts]
        stats = bm25_fit(terms, language="en")
        bm25_stats_save(project=project, stats=stats)
        bm25_stats_cache_clear()
        started = time.perf_counter()
        fresh = range(uploaded, size)
        points = [
            ChunkPoint(point_id=str(uuid.UUID(int=i + 1)), dense=dense[i], sparse=bm25_document_vector(terms[i], stats),
                       payload={"project_id": project.pk, "chunk_id": i, "page_id": 0, "url": f"https://demo/{i % 50}",
                                "topic": "", "text": texts[i]})
            for i in fresh
        ]  # fmt: skip
        points_upsert(collection=collection, points=points, batch_size=500)
        upload = time.perf_counter() - started
        uploaded = size

        for question in questions[:3]:  # warm-up: the encoder and the store's caches
            knowledge_search(project=project, query=question)
        total, embedding, qdrant_only, found = [], [], [], 0
        with profiled(f"hybrid-search-{engine}-{size}"):
            for question in questions:
                knowledge_search(project=project, query=question)
        for question in questions * 2:
            started = time.perf_counter()
            hits = knowledge_search(project=project, query=question)
            total.append(time.perf_counter() - started)
            found += bool(hits)
            started = time.perf_counter()
            vector = embed_texts([question], context=CallContext(purpose="bench")).vectors[0]
            embedding.append(time.perf_counter() - started)
            sparse = bm25_query_vector(analyze(question, "en"), stats)
            started = time.perf_counter()
            hybrid_query(collection=collection, dense=vector, sparse=sparse, project_id=project.pk)
            qdrant_only.append(time.perf_counter() - started)

        def ms(samples: list[float]) -> str:
            return f"{percentile(samples, 0.5) * 1000:.1f} / {percentile(samples, 0.95) * 1000:.1f} ms"

        figure(BENCHMARK, f"{label}, {size} chunks: hybrid_search p50 / p95", ms(total))
        figure(BENCHMARK, f"{label}, {size} chunks: of which store query p50 / p95", ms(qdrant_only))
        figure(BENCHMARK, f"{label}, {size} chunks: of which query embedding p50 / p95", ms(embedding))
        figure(BENCHMARK, f"{label}, {size} chunks: upload of the {len(points)} new points", f"{upload:.1f} s")
        assert found >= len(total) * 0.9
    if engine == "edge" and os.environ.get("BENCH_EDGE_INDEX"):
        # What `manage.py knowledge_store_rebuild` adds (offline: `optimize` blocks the process): HNSW indexes.
        started = time.perf_counter()
        collection_optimize(collection=collection)
        figure(BENCHMARK, f"{label}, {size} chunks: HNSW indexing (knowledge_store_rebuild)",
               f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        store = []
        for question in questions * 2:
            vector = embed_texts([question], context=CallContext(purpose="bench")).vectors[0]
            sparse = bm25_query_vector(analyze(question, "en"), stats)
            started = time.perf_counter()
            hybrid_query(collection=collection, dense=vector, sparse=sparse, project_id=project.pk)
            store.append(time.perf_counter() - started)
        figure(BENCHMARK, f"{label}, {size} chunks, HNSW-indexed: store query p50 / p95", ms(store))
    note(BENCHMARK, f"Store: {label}; "
         f"{len(questions) * 2} English questions of the retrieval benchmark per size; the same code runs against a "
         "Qdrant server with `BENCH_QDRANT_URL=http://host:6333 bin/bench`.")  # fmt: skip
