"""How long one evaluation of golden questions takes, and what it scores, on the bundled demo site.

Each benchmark question becomes a golden question with its first expected page (a golden question has one
page, the benchmark accepts any of its list, so recall here is at most the benchmark's hybrid figure).
"""

import json
import time
from pathlib import Path

import pytest

from console.demo import demo_site_files
from knowledge.golden import golden_question_create, retrieval_evaluate
from knowledge.models import Chunk, RetrievalEvaluation
from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.services import crawl_job_create
from tests.benchmarks.report import figure, note

pytestmark = pytest.mark.django_db

QUESTIONS = json.loads((Path(__file__).parent / "retrieval_questions.json").read_text(encoding="utf-8"))
BENCHMARK = "Golden questions (demo site)"


def test_golden_evaluation_time_and_scores(project_a):
    qdrant_close()
    job = crawl_job_run(job=crawl_job_create(project=project_a, files=demo_site_files()))
    assert job.status == "done", job.error
    for q in QUESTIONS:
        golden_question_create(project=project_a, question=q["question"], expected_url=f"file:{q['expected'][0]}")
    retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)  # warm: encoder, BM25 cache

    started = time.monotonic()
    evaluation = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
    seconds = time.monotonic() - started

    assert evaluation is not None
    assert evaluation.questions == len(QUESTIONS)
    chunks = Chunk.objects.filter(project=project_a).count()
    print(f"\ngolden evaluation: {len(QUESTIONS)} questions, {job.pages_done} pages, {chunks} chunks: {seconds:.2f} s "
          f"({1000 * seconds / len(QUESTIONS):.0f} ms per question), recall@3 {evaluation.recall_at_3:.2f}, "
          f"MRR {evaluation.mrr:.2f}")  # fmt: skip
    figure(BENCHMARK, f"one evaluation of {len(QUESTIONS)} questions", f"{seconds:.2f} s")
    figure(BENCHMARK, "per question", f"{1000 * seconds / len(QUESTIONS):.0f} ms")
    figure(BENCHMARK, "recall@3, MRR (first expected page only)", f"{evaluation.recall_at_3:.2f}, {evaluation.mrr:.2f}")
    note(BENCHMARK, f"{job.pages_done} pages, {chunks} chunks; offline encoder, embedded store, after a warm-up run.")
    assert evaluation.recall_at_3 > 0.5
