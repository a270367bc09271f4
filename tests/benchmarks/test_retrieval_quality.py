"""Retrieval quality on the bundled bilingual demo site: recall@3 and MRR per search method.

Methods: dense only (offline embeddings), BM25 only (with Snowball stemming, and without it, to
measure what stemming gains for inflected Russian), and the hybrid DBSF search the bot uses.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bots.llm.embeddings import embed_texts
from console.demo import demo_site_files
from knowledge.bm25 import analyze, bm25_document_vector, bm25_fit, bm25_query_vector, bm25_stats_load
from knowledge.fusion import HYBRID_FUSION, HybridFusion
from knowledge.models import Chunk
from knowledge.pipeline import _collection, crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.services import crawl_job_create
from knowledge.vector_store import (
    ChunkPoint,
    SearchHit,
    collection_ensure,
    dense_query,
    hybrid_query,
    points_upsert,
    sparse_query,
)
from tests.benchmarks.report import figure, note

pytestmark = pytest.mark.django_db

QUESTIONS = json.loads((Path(__file__).parent / "retrieval_questions.json").read_text(encoding="utf-8"))
DEPTH = 10


def page_of(hit: SearchHit) -> str:
    return hit.url.removeprefix("file:")


def scores(rankings: list[tuple[list[str], list[str]]]) -> tuple[float, float]:
    recall = sum(any(page in expected for page in ranked[:3]) for ranked, expected in rankings) / len(rankings)
    mrr = 0.0
    for ranked, expected in rankings:
        rank = next((i for i, page in enumerate(ranked, 1) if page in expected), None)
        mrr += 1 / rank if rank else 0.0
    return recall, mrr / len(rankings)


def unstemmed_collection(project, stats_language: str) -> tuple[str, object]:
    """A second collection holding the same chunks with BM25 over unstemmed tokens."""
    chunks = list(Chunk.objects.filter(project=project).select_related("page"))
    terms = [analyze(f"{c.topic}\n{c.text}", stats_language, stem=False) for c in chunks]
    stats = bm25_fit(terms, language=stats_language)
    collection = collection_ensure(
        project_id=project.pk + 100000, model_id="unstemmed-bm25", dim=len(chunks[0].embedding)
    )
    points_upsert(collection=collection, points=[
        ChunkPoint(str(c.point_id), c.embedding, bm25_document_vector(t, stats),
                   {"project_id": project.pk, "chunk_id": c.pk, "page_id": c.page_id, "url": c.page.url,
                    "topic": c.topic, "text": c.text})
        for c, t in zip(chunks, terms, strict=True)
    ])  # fmt: skip
    return collection, stats


def test_retrieval_quality_per_method(project_a):
    qdrant_close()
    started = time.monotonic()
    job = crawl_job_run(job=crawl_job_create(project=project_a, files=demo_site_files()))
    crawl_seconds = time.monotonic() - started
    assert job.status == "done", job.error
    chunks = Chunk.objects.filter(project=project_a).count()
    collection = _collection(project_a)
    stats = bm25_stats_load(project=project_a)
    plain_collection, plain_stats = unstemmed_collection(project_a, project_a.language)

    methods: dict[str, Callable[[dict], list[SearchHit]]] = {}
    vectors = embed_texts([q["question"] for q in QUESTIONS]).vectors
    dense_of = {q["question"]: v for q, v in zip(QUESTIONS, vectors, strict=True)}

    def stemmed(q: dict) -> object:
        return bm25_query_vector(analyze(q["question"], q["language"]), stats)

    methods["dense"] = lambda q: dense_query(collection=collection, dense=dense_of[q["question"]], limit=DEPTH)
    methods["bm25 (stemmed)"] = lambda q: sparse_query(collection=collection, sparse=stemmed(q), limit=DEPTH)
    methods["bm25 (no stemming)"] = lambda q: sparse_query(
        collection=plain_collection, sparse=bm25_query_vector(analyze(q["question"], q["language"], stem=False),
                                                              plain_stats), limit=DEPTH)  # fmt: skip
    methods["hybrid (shipped fusion, top 3)"] = lambda q: hybrid_query(
        collection=collection, dense=dense_of[q["question"]], sparse=stemmed(q), limit=3
    )

    lines = [f"\nretrieval on the demo site: {len(QUESTIONS)} questions, {job.pages_done} pages, {chunks} chunks;"
             f" crawl {crawl_seconds:.1f} s ({job.pages_done / crawl_seconds:.1f} pages/s,"
             f" {chunks / crawl_seconds:.1f} chunks/s)",
             f"{'method':30} {'lang':4} {'recall@3':>8} {'MRR':>6}"]  # fmt: skip
    results = {}
    for name, search in methods.items():
        for language in ("en", "ru", "all"):
            subset = [q for q in QUESTIONS if language in ("all", q["language"])]
            rankings = [([page_of(hit) for hit in search(q)], q["expected"]) for q in subset]
            recall, mrr = scores(rankings)
            results[(name, language)] = (recall, mrr)
            lines.append(f"{name:30} {language:4} {recall:8.2f} {mrr:6.2f}")
    print("\n".join(lines))
    for name in methods:
        recall, mrr = results[(name, "all")]
        per_language = f"{results[(name, 'en')][0]:.2f} / {results[(name, 'ru')][0]:.2f}"
        figure("Retrieval quality (demo site)", f"{name}: recall@3 en / ru / all, MRR all",
               f"{per_language} / {recall:.2f}, {mrr:.2f}")  # fmt: skip
    note("Retrieval quality (demo site)", f"{len(QUESTIONS)} questions over {job.pages_done} pages, {chunks} chunks.")
    assert results[("hybrid (shipped fusion, top 3)", "all")][0] > 0

    # Fusion tuning (knowledge/fusion.py): every candidate on the same questions, per language half.
    candidates = [HybridFusion("dbsf", prefetch, min_score=floor) for prefetch in (3, 6, 10, 20, 50)
                  for floor in (0.0, 0.3, 0.5)]  # fmt: skip
    candidates += [HybridFusion("rrf", prefetch, rrf_k=k, weights=weights, min_score=0.0)
                   for prefetch in (6, 20) for k in (2, 10, 60)
                   for weights in ((1.0, 1.0), (1.0, 1.5), (1.0, 2.0), (1.0, 3.0), (2.0, 1.0))]  # fmt: skip
    lines = [f"{'fusion':44} {'en r@3':>6} {'ru r@3':>6} {'all':>5} {'MRR':>5}"]
    for fusion in candidates:
        row = {}
        for language in ("en", "ru", "all"):
            subset = [q for q in QUESTIONS if language in ("all", q["language"])]
            rankings = [([page_of(hit) for hit in hybrid_query(collection=collection, dense=dense_of[q["question"]],
                          sparse=stemmed(q), limit=3, fusion=fusion)], q["expected"]) for q in subset]  # fmt: skip
            row[language] = scores(rankings)
        shipped = " <- shipped" if fusion == HYBRID_FUSION else ""
        name = (f"{fusion.method} prefetch={fusion.prefetch_limit} min={fusion.min_score}" if fusion.method == "dbsf"
                else f"rrf prefetch={fusion.prefetch_limit} k={fusion.rrf_k} w={fusion.weights}")  # fmt: skip
        lines.append(f"{name:44} {row['en'][0]:6.2f} {row['ru'][0]:6.2f} {row['all'][0]:5.2f} {row['all'][1]:5.2f}"
                     f"{shipped}")  # fmt: skip
    print("\n".join(lines))
