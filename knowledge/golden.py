"""Retrieval quality per tenant: golden questions run through the bot's own search, scored by recall@3 and MRR.

A golden question is a question with the page that answers it. An evaluation asks every golden question
of a project through `knowledge_search` (exactly what the sales agent's `hybrid_search` tool calls: at most
three fused results, scores under 0.5 dropped) and records where the expected page came: rank 1-3, or
missing. recall@3 is the share of questions whose page is among the results; MRR the mean of 1/rank (0
when missing). Each evaluation is compared with the one before it, question by question, so that a crawl
which removed or buried an answered page is named on the project console with the questions it cost.

Evaluations run on the knowledge worker (which owns the vector store) after every finished crawl and on
demand (`retrieval_evaluation_request`).
"""

import logging
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from knowledge.models import CrawlJob, GoldenQuestion, RetrievalEvaluation
from knowledge.search import MAX_RESULTS, knowledge_search
from knowledge.vector_store import SearchHit
from tenants.models import Project

logger = logging.getLogger(__name__)

QUESTION_MAX = 500
URL_MAX = 2000


class GoldenQuestionInvalid(ValueError):
    """A golden question that cannot be stored (empty, too long): the message says which and why."""


class RetrievalEvaluationFailed(RuntimeError):
    """The search failed for a golden question (embedding provider down, store unreachable): nothing stored."""


# --- golden questions ----------------------------------------------------------------------------------


def golden_question_create(
    *, project: Project, question: str, expected_url: str, created_by: AbstractBaseUser | None = None
) -> GoldenQuestion:
    """Store a golden question; saving the same question and page twice keeps one."""
    question, expected_url = " ".join(question.split()), expected_url.strip()
    problems = []
    if not question:
        problems.append("the question is empty")
    elif len(question) > QUESTION_MAX:
        problems.append(f"the question is longer than {QUESTION_MAX} characters")
    if not expected_url:
        problems.append("the expected page is empty")
    elif len(expected_url) > URL_MAX:
        problems.append(f"the expected page's URL is longer than {URL_MAX} characters")
    if problems:
        logger.warning("golden question refused: %s", "; ".join(problems), extra={"project_id": project.pk})
        raise GoldenQuestionInvalid("; ".join(problems))
    golden, _ = GoldenQuestion.objects.get_or_create(
        project=project, question=question, expected_url=expected_url, defaults={"created_by": created_by}
    )
    return golden


# --- evaluation ----------------------------------------------------------------------------------------


def hit_rank(*, hits: list[SearchHit], expected_url: str) -> int | None:
    """The 1-based position of the expected page's first chunk among the results, or None when it is missing."""
    for position, hit in enumerate(hits, start=1):
        if hit.url == expected_url:
            return position
    return None


def reciprocal_rank(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def retrieval_evaluate(*, project: Project, trigger: str, job: CrawlJob | None = None) -> RetrievalEvaluation | None:
    """Ask every golden question of the project, store the scores; None when the project has none."""
    questions = list(GoldenQuestion.objects.filter(project=project).order_by("pk"))
    if not questions:
        return None
    ranks = {golden.pk: _rank_of(project=project, golden=golden) for golden in questions}
    with transaction.atomic():
        # One evaluation of a project at a time picks its predecessor, so two runs never compare with the same.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        previous = RetrievalEvaluation.objects.filter(project=project).order_by("-created_at", "-pk").first()
        before = {row["question_id"]: row.get("rank") for row in previous.results} if previous else {}
        results = [
            {
                "question_id": golden.pk,
                "question": golden.question,
                "expected_url": golden.expected_url,
                "rank": ranks[golden.pk],
                **({"previous_rank": before[golden.pk]} if golden.pk in before else {}),
            }
            for golden in questions
        ]
        evaluation = RetrievalEvaluation.objects.create(
            project=project, job=job, previous=previous, trigger=trigger, questions=len(questions),
            recall_at_3=sum(rank is not None for rank in ranks.values()) / len(questions),
            mrr=sum(reciprocal_rank(rank) for rank in ranks.values()) / len(questions), results=results,
        )  # fmt: skip
    lost = evaluation_regressions(evaluation=evaluation)
    log = logger.warning if lost else logger.info
    log(
        "retrieval evaluation %s (%s): recall@3 %.2f, MRR %.2f over %s question(s), %s worse than before",
        evaluation.pk, trigger, evaluation.recall_at_3, evaluation.mrr, len(questions), len(lost),
        extra={"project_id": project.pk, "job_id": job.pk if job else None},
    )  # fmt: skip
    return evaluation


def _rank_of(*, project: Project, golden: GoldenQuestion) -> int | None:
    try:
        hits = knowledge_search(project=project, query=golden.question, top_k=MAX_RESULTS)
    except Exception as exc:  # a half-asked set would score the failure as lost pages: nothing is stored
        logger.exception(
            "retrieval evaluation failed at golden question %s", golden.pk, extra={"project_id": project.pk}
        )
        raise RetrievalEvaluationFailed(
            f"golden question #{golden.pk} ({golden.question!r}): the search failed: {type(exc).__name__}: {exc}"
        ) from exc
    return hit_rank(hits=hits, expected_url=golden.expected_url)


def retrieval_evaluation_request(*, project: Project, trigger: str, job: CrawlJob | None = None) -> None:
    """Evaluate on the knowledge worker (which owns the store) once the current transaction commits."""
    from knowledge.tasks import retrieval_evaluate_task

    job_id = job.pk if job is not None else None
    transaction.on_commit(lambda: retrieval_evaluate_task.delay(project.pk, trigger, job_id))


# --- reads for the console -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionResult:
    question_id: int
    question: str
    expected_url: str
    rank: int | None
    previous_rank: int | None
    was_evaluated_before: bool

    @property
    def got_worse(self) -> bool:
        """Found before and now missing, or found lower than before."""
        if not self.was_evaluated_before or self.previous_rank is None:
            return False
        return self.rank is None or self.rank > self.previous_rank


def evaluation_results(*, evaluation: RetrievalEvaluation) -> list[QuestionResult]:
    return [
        QuestionResult(
            question_id=row["question_id"],
            question=row["question"],
            expected_url=row["expected_url"],
            rank=row.get("rank"),
            previous_rank=row.get("previous_rank"),
            was_evaluated_before="previous_rank" in row,
        )
        for row in evaluation.results
    ]


def evaluation_regressions(*, evaluation: RetrievalEvaluation) -> list[QuestionResult]:
    """The questions this evaluation answers worse than the one before it did."""
    return [result for result in evaluation_results(evaluation=evaluation) if result.got_worse]


@dataclass(frozen=True)
class RetrievalQuality:
    """What the project console shows: the latest scores, their trend, and the latest crawl's damage."""

    questions: int  # golden questions now
    latest: RetrievalEvaluation | None
    results: list[QuestionResult] = field(default_factory=list)
    recall_change: float | None = None  # latest minus the evaluation before it
    mrr_change: float | None = None
    crawl_evaluation: RetrievalEvaluation | None = None  # the latest evaluation after a crawl, if it made things worse
    crawl_regressions: list[QuestionResult] = field(default_factory=list)

    @property
    def crawl_made_it_worse(self) -> bool:
        return bool(self.crawl_regressions)

    @property
    def recall_trend(self) -> str:
        return signed_change(self.recall_change)

    @property
    def mrr_trend(self) -> str:
        return signed_change(self.mrr_change)


def signed_change(change: float | None) -> str:
    """`+0.50`, `-0.25`, `±0.00`; "" when there is nothing to compare with."""
    if change is None:
        return ""
    if abs(change) < 0.005:
        return "±0.00"
    return f"{change:+.2f}"


def _worse(rank: int | None, lost: QuestionResult) -> bool:
    """`rank` is still worse than where the question's page was before the crawl that lost it."""
    return rank is None or (lost.previous_rank is not None and rank > lost.previous_rank)


def retrieval_quality(*, project: Project) -> RetrievalQuality:
    questions = GoldenQuestion.objects.filter(project=project).count()
    evaluations = RetrievalEvaluation.objects.filter(project=project).select_related("previous", "job")
    latest = evaluations.order_by("-created_at", "-pk").first()
    if latest is None:
        return RetrievalQuality(questions=questions, latest=None)
    previous = latest.previous
    results = evaluation_results(evaluation=latest)
    after_crawl = evaluations.filter(trigger=RetrievalEvaluation.Trigger.CRAWL).order_by("-created_at", "-pk").first()
    regressions = evaluation_regressions(evaluation=after_crawl) if after_crawl is not None else []
    # What the crawl cost and is still lost now: a later evaluation that finds the page again (the operator
    # restored it, or pointed the question elsewhere) or a deleted question ends the warning.
    now = {result.question_id: result.rank for result in results}
    regressions = [lost for lost in regressions if lost.question_id in now and _worse(now[lost.question_id], lost)]
    return RetrievalQuality(
        questions=questions, latest=latest, results=results,
        recall_change=latest.recall_at_3 - previous.recall_at_3 if previous else None,
        mrr_change=latest.mrr - previous.mrr if previous else None,
        crawl_evaluation=after_crawl if regressions else None, crawl_regressions=regressions,
    )  # fmt: skip
