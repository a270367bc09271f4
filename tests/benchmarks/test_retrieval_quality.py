"""Retrieval quality per offline embedding model: recall@1, recall@3 and MRR per search method and language.

Two bilingual (en/ru) sites: the bundled demo site (`retrieval_questions.json`) and a second, smaller one
written for this benchmark (`bilingual_site/`, `bilingual_questions.json`: a language school, other words,
other questions), so that the fusion is not tuned on one site only. Methods: dense only, BM25 only (with
Snowball stemming, and without it on the demo site, to measure what stemming gains for inflected Russian),
and the hybrid search the bot uses (`knowledge.fusion`, per model). Then every fusion candidate, per
language half, and the query embedding cost (CPU ms per question) of each model.
"""

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import override_settings

from bots.llm.embeddings import OFFLINE_MODELS, embed_texts
from console.demo import demo_site_files
from knowledge.bm25 import analyze, bm25_document_vector, bm25_fit, bm25_query_vector, bm25_stats_load
from knowledge.fusion import HybridFusion, fusion_for_model
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

HERE = Path(__file__).parent
QUESTIONS = json.loads((HERE / "retrieval_questions.json").read_text(encoding="utf-8"))
SECOND_QUESTIONS = json.loads((HERE / "bilingual_questions.json").read_text(encoding="utf-8"))
DEPTH = 10
LANGUAGES = ("en", "ru", "all")


def second_site_files() -> list[tuple[str, bytes]]:
    root = HERE / "bilingual_site"
    return [(str(path.relative_to(root)), path.read_bytes()) for path in sorted(root.glob("*/*.html"))]


def page_of(hit: SearchHit) -> str:
    return hit.url.removeprefix("file:")


def scores(rankings: list[tuple[list[str], list[str]]]) -> tuple[float, float, float]:
    """recall@1, recall@3, MRR (a page counts as found at its first rank; chunks of one page repeat it)."""
    at1 = sum(bool(ranked) and ranked[0] in expected for ranked, expected in rankings) / len(rankings)
    at3 = sum(any(page in expected for page in ranked[:3]) for ranked, expected in rankings) / len(rankings)
    mrr = 0.0
    for ranked, expected in rankings:
        rank = next((i for i, page in enumerate(ranked, 1) if page in expected), None)
        mrr += 1 / rank if rank else 0.0
    return at1, at3, mrr / len(rankings)


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


def miss_report(q: dict, methods: dict[str, Callable[[dict], list[SearchHit]]]) -> list[str]:
    """Why the hybrid's first hit is not an expected page: its top 3 and the best expected chunk, each with
    its rank and score in the dense and BM25 rankings (DEPTH deep; "-" beyond) and the start of its text."""
    top = methods["hybrid (shipped fusion, top 3)"](q)
    if top and page_of(top[0]) in q["expected"]:
        return []
    dense, bm25 = methods["dense"](q), methods["bm25 (stemmed)"](q)
    expected = next((hit for hit in dense if page_of(hit) in q["expected"]), None)

    def line(label: str, hit: SearchHit) -> str:
        ranks = []
        for name, ranking in (("dense", dense), ("bm25", bm25)):
            rank = next((i for i, other in enumerate(ranking, 1) if other.chunk_id == hit.chunk_id), None)
            ranks.append(f"{name} #{rank} {ranking[rank - 1].score:.3f}" if rank else f"{name} -")
        text = " ".join(hit.text.split())[:160]
        return f"    {label} {page_of(hit)} [{hit.topic}] {', '.join(ranks)}: {text}"

    return [f"  {q['language']} {q['question']!r}: expected {q['expected']}",
            *(line(f"#{i}", hit) for i, hit in enumerate(top, 1)),
            *([line("want", expected)] if expected else [])]  # fmt: skip


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


@pytest.mark.parametrize("model_id", list(OFFLINE_MODELS))
@pytest.mark.parametrize("site", ["demo", "second"])
def test_retrieval_quality_per_method(project_a, model_id, site):
    with override_settings(OFFLINE_EMBEDDING_MODEL=model_id, EMBEDDING_MODEL=""):
        retrieval_quality(project_a, model_id, site)


def retrieval_quality(project, model_id: str, site: str) -> None:
    qdrant_close()
    files, questions = (demo_site_files(), QUESTIONS) if site == "demo" else (second_site_files(), SECOND_QUESTIONS)
    bench = f"Retrieval quality ({'demo site' if site == 'demo' else 'second bilingual site'}, {model_id})"
    started, cpu_started = time.monotonic(), time.process_time()
    job = crawl_job_run(job=crawl_job_create(project=project, files=files))
    crawl_seconds, crawl_cpu = time.monotonic() - started, time.process_time() - cpu_started
    assert job.status == "done", job.error
    chunks = Chunk.objects.filter(project=project).count()
    collection = _collection(project)
    stats = bm25_stats_load(project=project)

    # The query cost a visitor's question pays: one embed_texts call per question, CPU time of this process.
    embed_texts(["warm-up"], kind="query")
    cpu_ms, vectors = [], []
    for q in questions:
        cpu_before = time.process_time()
        vectors.append(embed_texts([q["question"]], kind="query").vectors[0])
        cpu_ms.append((time.process_time() - cpu_before) * 1000)
    dense_of = {q["question"]: v for q, v in zip(questions, vectors, strict=True)}

    def stemmed(q: dict) -> object:
        return bm25_query_vector(analyze(q["question"], q["language"]), stats)

    shipped = fusion_for_model(model_id)
    methods: dict[str, Callable[[dict], list[SearchHit]]] = {}
    methods["dense"] = lambda q: dense_query(collection=collection, dense=dense_of[q["question"]], limit=DEPTH)
    methods["bm25 (stemmed)"] = lambda q: sparse_query(collection=collection, sparse=stemmed(q), limit=DEPTH)
    if site == "demo":
        plain_collection, plain_stats = unstemmed_collection(project, project.language)
        methods["bm25 (no stemming)"] = lambda q: sparse_query(
            collection=plain_collection, sparse=bm25_query_vector(analyze(q["question"], q["language"], stem=False),
                                                                  plain_stats), limit=DEPTH)  # fmt: skip
    methods["hybrid (shipped fusion, top 3)"] = lambda q: hybrid_query(
        collection=collection, dense=dense_of[q["question"]], sparse=stemmed(q), limit=3, fusion=shipped
    )

    lines = [f"\n{bench}: {len(questions)} questions, {job.pages_done} pages, {chunks} chunks;"
             f" crawl {crawl_seconds:.1f} s ({chunks / crawl_seconds:.1f} chunks/s, {crawl_cpu:.1f} s CPU),"
             f" query embedding median {statistics.median(cpu_ms):.1f} ms CPU; {load()}",
             f"{'method':30} {'lang':4} {'r@1':>5} {'r@3':>5} {'MRR':>5}"]  # fmt: skip
    results = {}
    for name, search in methods.items():
        for language in LANGUAGES:
            subset = [q for q in questions if language in ("all", q["language"])]
            rankings = [([page_of(hit) for hit in search(q)], q["expected"]) for q in subset]
            results[(name, language)] = at1, at3, mrr = scores(rankings)
            lines.append(f"{name:30} {language:4} {at1:5.2f} {at3:5.2f} {mrr:5.2f}")
    misses = [line for q in questions for line in miss_report(q, methods)]
    print("\n".join([*lines, "hybrid misses at rank 1 (dense / BM25 rank and score of each hit):", *misses]))
    for name in methods:
        en, ru, both = (results[(name, language)] for language in LANGUAGES)
        figure(bench, f"{name}: r@1 / r@3 en, r@1 / r@3 ru, MRR all",
               f"{en[0]:.2f} / {en[1]:.2f}, {ru[0]:.2f} / {ru[1]:.2f}, {both[2]:.2f}")  # fmt: skip
    figure(
        bench,
        "query embedding, CPU ms per question (median / max)",
        f"{statistics.median(cpu_ms):.1f} / {max(cpu_ms):.1f} ({load()})",
    )
    figure(bench, "crawl: chunks embedded and stored per second", f"{chunks / crawl_seconds:.1f} ({load()})")
    note(bench, f"{len(questions)} questions over {job.pages_done} pages, {chunks} chunks.")
    assert results[("hybrid (shipped fusion, top 3)", "all")][1] > 0

    # Fusion tuning (knowledge/fusion.py): every candidate on the same questions, per language half.
    candidates = [HybridFusion("dbsf", prefetch, min_score=floor) for prefetch in (3, 6, 10, 20, 50)
                  for floor in (0.0, 0.3, 0.5)]  # fmt: skip
    candidates += [HybridFusion("rrf", prefetch, rrf_k=k, weights=weights, min_score=0.0)
                   for prefetch in (6, 10, 20) for k in (1, 2, 3, 5, 10, 60)
                   for weights in ((1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (2.5, 1.0), (3.0, 1.0), (4.0, 1.0), (6.0, 1.0),
                                   (1.0, 1.5), (1.0, 2.0))]  # fmt: skip
    candidates += [HybridFusion("score_rrf", prefetch, rrf_k=k, weights=weights, min_score=0.0)
                   for prefetch in (6, 10, 20) for k in (1, 2, 3, 5, 10, 60)
                   for weights in ((1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0))]  # fmt: skip
    lines = [f"{'fusion':44} {'en r@1':>6} {'en r@3':>6} {'ru r@1':>6} {'ru r@3':>6} {'MRR':>5}"]
    for fusion in candidates:
        row = {}
        for language in LANGUAGES:
            subset = [q for q in questions if language in ("all", q["language"])]
            rankings = [([page_of(hit) for hit in hybrid_query(collection=collection, dense=dense_of[q["question"]],
                          sparse=stemmed(q), limit=3, fusion=fusion)], q["expected"]) for q in subset]  # fmt: skip
            row[language] = scores(rankings)
        mark = " <- shipped" if fusion == shipped else ""
        knobs = f"min={fusion.min_score}" if fusion.method == "dbsf" else f"k={fusion.rrf_k} w={fusion.weights}"
        name = f"{fusion.method} prefetch={fusion.prefetch_limit} {knobs}"
        lines.append(f"{name:44} {row['en'][0]:6.2f} {row['en'][1]:6.2f} {row['ru'][0]:6.2f} {row['ru'][1]:6.2f}"
                     f" {row['all'][2]:5.2f}{mark}")  # fmt: skip
    print("\n".join(lines))
