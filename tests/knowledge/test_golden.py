"""Golden questions: asked through the bot's own search after a crawl of a real local site, scored per tenant.

Real PostgreSQL, the real vector store and the offline embedding encoder; the site is served over HTTP and
changes between crawls.
"""

import pytest
from django.urls import reverse

from console.project_health import project_blockers
from knowledge import admin as knowledge_admin
from knowledge.golden import (
    GoldenQuestionInvalid,
    RetrievalEvaluationFailed,
    evaluation_regressions,
    golden_question_create,
    hit_rank,
    retrieval_evaluate,
    retrieval_quality,
)
from knowledge.models import CrawlJob, GoldenQuestion, RetrievalEvaluation
from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.services import crawl_job_create
from knowledge.vector_store import SearchHit
from tests.factories import MembershipFactory
from tests.knowledge.site import PAGES

pytestmark = pytest.mark.django_db

SUNDAY = "Are you open on Sunday?"
WINDOWS = "How much is window washing?"
CARPET = "Сколько стоит химчистка ковра?"


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def crawl_sitemap(project, site) -> CrawlJob:
    return crawl_job_run(job=crawl_job_create(project=project, sitemap=site.url("sitemap.xml")))


def recrawl(project) -> CrawlJob:
    return crawl_job_run(job=crawl_job_create(project=project, sources=project.knowledge_sources.all()))


def hit(url: str) -> SearchHit:
    return SearchHit(score=0.9, url=url, topic="", text="", chunk_id=1)


def test_the_rank_is_the_expected_pages_first_position_among_the_results():
    hits = [hit("https://a/x"), hit("https://a/y"), hit("https://a/y")]
    assert hit_rank(hits=hits, expected_url="https://a/y") == 2
    assert hit_rank(hits=hits, expected_url="https://a/x") == 1
    assert hit_rank(hits=hits, expected_url="https://a/z") is None
    assert hit_rank(hits=[], expected_url="https://a/x") is None


def test_a_golden_question_is_checked_and_saving_it_twice_keeps_one(project_a, project_b):
    first = golden_question_create(project=project_a, question="  Open on   Sunday? ", expected_url=" https://a/hours ")
    again = golden_question_create(project=project_a, question="Open on Sunday?", expected_url="https://a/hours")
    other = golden_question_create(project=project_b, question="Open on Sunday?", expected_url="https://a/hours")
    assert first.pk == again.pk != other.pk
    assert (first.question, first.expected_url) == ("Open on Sunday?", "https://a/hours")
    for question, url, problem in [(" ", "https://a/x", "the question is empty"), ("Open?", "", "page is empty"),
                                   ("x" * 501, "https://a/x", "longer than 500")]:  # fmt: skip
        with pytest.raises(GoldenQuestionInvalid, match=problem):
            golden_question_create(project=project_a, question=question, expected_url=url)
    assert GoldenQuestion.objects.filter(project=project_a).count() == 1


def test_a_project_without_golden_questions_gets_no_evaluation(project_a, local_site):
    crawl_sitemap(project_a, local_site)
    assert retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND) is None
    assert not RetrievalEvaluation.objects.exists()
    assert retrieval_quality(project=project_a).latest is None


def test_a_crawl_that_removes_an_answered_page_lowers_recall_and_mrr_and_names_the_question(
    project_a, project_b, local_site
):
    crawl_sitemap(project_a, local_site)
    crawl_sitemap(project_b, local_site)  # another tenant of the same site keeps every page
    hours, prices, carpets = (local_site.url(path) for path in ("en/hours.html", "en/prices.html", "ru/ceny.html"))
    for question, url in ((SUNDAY, hours), (WINDOWS, prices), (CARPET, carpets)):
        golden_question_create(project=project_a, question=question, expected_url=url)
    golden_question_create(project=project_b, question=SUNDAY, expected_url=hours)

    before = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)

    assert before is not None
    assert before.questions == 3
    ranks = {row["question"]: row["rank"] for row in before.results}
    assert all(ranks.values()), ranks  # every page is found in the top three
    assert before.recall_at_3 == 1.0
    assert before.mrr == pytest.approx(sum(1 / rank for rank in ranks.values()) / 3)
    assert ranks[SUNDAY] == 1
    assert before.previous is None
    assert evaluation_regressions(evaluation=before) == []

    local_site.sitemap_set([path for path in PAGES if path != "en/hours.html"])
    job = recrawl(project_a)
    assert job.pages_removed == 1, job.error

    after = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.CRAWL, job=job)

    assert after.previous == before
    assert after.job == job
    assert after.recall_at_3 == pytest.approx(2 / 3)
    assert after.mrr == pytest.approx(before.mrr - 1 / 3)
    [lost] = evaluation_regressions(evaluation=after)
    assert (lost.question, lost.expected_url, lost.previous_rank, lost.rank) == (SUNDAY, hours, 1, None)
    quality = retrieval_quality(project=project_a)
    assert quality.latest == after
    assert quality.recall_change == pytest.approx(-1 / 3)
    assert quality.recall_trend == "-0.33"
    assert quality.crawl_evaluation == after
    assert [r.question for r in quality.crawl_regressions] == [SUNDAY]
    [warning] = [b for b in project_blockers(project=project_a) if b.code == "retrieval_worse"]
    assert f"crawl #{job.pk}" in warning.title
    assert "recall@3 1.00 → 0.67" in warning.title
    assert f'"{SUNDAY}" (rank 1 → not found)' in warning.title

    # The other tenant asks the same question of its own copy of the site: nothing changed there.
    other = retrieval_evaluate(project=project_b, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
    assert (other.questions, other.recall_at_3, other.previous) == (1, 1.0, None)
    assert not [b for b in project_blockers(project=project_b) if b.code == "retrieval_worse"]

    # Asking again on demand does not hide what the crawl lost while the page is still missing.
    again = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
    assert (again.previous, again.recall_at_3) == (after, pytest.approx(2 / 3))
    assert evaluation_regressions(evaluation=again) == []  # nothing worse than the evaluation just before
    assert retrieval_quality(project=project_a).recall_trend == "±0.00"
    assert [r.question for r in retrieval_quality(project=project_a).crawl_regressions] == [SUNDAY]

    # The page comes back: the next crawl's evaluation recovers and the warning goes.
    local_site.sitemap_set(list(PAGES))
    job = recrawl(project_a)
    recovered = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.CRAWL, job=job)
    assert recovered.recall_at_3 == 1.0
    assert retrieval_quality(project=project_a).recall_trend == "+0.33"
    assert not retrieval_quality(project=project_a).crawl_made_it_worse
    assert not [b for b in project_blockers(project=project_a) if b.code == "retrieval_worse"]


@pytest.mark.parametrize(("role", "saved"), [("operator", True), ("viewer", False)])
def test_the_playground_saves_a_golden_question_for_an_operator_only(
    client, project_a, project_b, role, saved, monkeypatch
):
    # The playground the save returns to searches the question on a worker; none runs here, so it gives up
    # at once rather than after the shipped 20 s (its page says the search failed, as it did after 20 s).
    monkeypatch.setattr(knowledge_admin, "SEARCH_TIMEOUT_SECONDS", 0.01)
    user = MembershipFactory(project=project_a, role=role).user
    client.force_login(user)
    data = {"project": project_a.pk, "question": SUNDAY, "expected_url": "https://alpha.example/hours"}

    response = client.post(reverse("admin:knowledge_golden_save"), data, follow=True)

    messages = [str(message) for message in response.context["messages"]]
    golden = GoldenQuestion.objects.filter(project=project_a, question=SUNDAY).first()
    if saved:
        assert golden is not None
        assert golden.created_by == user
        assert messages == [f'Saved as golden question #{golden.pk}: "{SUNDAY}" -> https://alpha.example/hours']
        assert response.redirect_chain[-1][0].startswith(reverse("admin:knowledge_search_playground") + "?project=")
    else:
        assert golden is None
        assert messages[0].startswith("Nothing saved: Select a valid choice")
    refused = client.post(reverse("admin:knowledge_golden_save"), {**data, "question": " "}, follow=True)
    assert "Nothing saved" in str(next(iter(refused.context["messages"])))
    assert GoldenQuestion.objects.count() == int(saved)


def test_a_search_that_fails_stores_no_evaluation_and_says_which_question(
    project_a, local_site, fake_llm, settings, caplog
):
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = "openai/text-embedding-3-small", 16  # the fake endpoint
    assert crawl_sitemap(project_a, local_site).status == "done"
    golden = golden_question_create(project=project_a, question=SUNDAY, expected_url=local_site.url("en/hours.html"))
    fake_llm.fail_all("embeddings", 400, message="model not found")

    with pytest.raises(RetrievalEvaluationFailed, match=f"golden question #{golden.pk} .*the search failed"):
        retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)

    assert not RetrievalEvaluation.objects.exists()
    [record] = [r for r in caplog.records if r.getMessage().startswith("retrieval evaluation failed")]
    assert record.project_id == project_a.pk
    fake_llm.recover("embeddings")
    evaluation = retrieval_evaluate(project=project_a, trigger=RetrievalEvaluation.Trigger.ON_DEMAND)
    assert evaluation.questions == 1
