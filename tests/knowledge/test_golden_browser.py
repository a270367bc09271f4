"""An operator in a real browser saves golden questions from the search playground; a crawl on the real worker
that removes an answered page shows the drop of recall@3 and MRR, and the lost question, on the project console."""

import time

import pytest

from knowledge.models import CrawlJob, GoldenQuestion, RetrievalEvaluation
from tenants.models import Membership
from tests.console.browser import ARTIFACTS, chromium, log_in, page, screenshot
from tests.factories import MembershipFactory
from tests.knowledge.site import PAGES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["chromium", "page"]  # fixtures

SUNDAY = "Are you open on Sunday?"
WINDOWS = "How much is window washing?"


def wait_until(predicate, timeout: float, what: str, worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")


def console_crawl(page, project, worker) -> CrawlJob:
    """Press Crawl now on the console and wait until the worker finished the job and evaluated after it."""
    known = set(CrawlJob.objects.values_list("pk", flat=True))
    page.click("#crawl-now")
    page.wait_for_selector("text=started; its progress updates on this page")
    [job] = CrawlJob.objects.filter(project=project).exclude(pk__in=known)
    page.wait_for_selector(f"#crawl-jobs tr[data-job='{job.pk}'][data-status=done]", timeout=120_000)
    return job


def save_from_playground(page, project, question: str, url: str) -> None:
    page.goto(f"/admin/knowledge/crawljob/search/?project={project.pk}&query={question}")
    row = page.locator("#search-results tbody tr", has=page.locator(f"a[href='{url}']")).first
    row.locator(".golden-save button").click()
    page.wait_for_selector(".messagelist .success")
    assert "Saved as golden question #" in page.inner_text(".messagelist")


def test_a_crawl_that_removes_an_answered_page_shows_the_drop_on_the_console(
    page, project_a, project_b, local_site, celery_worker
):
    MembershipFactory(project=project_a, role=Membership.Role.OPERATOR, user__username="olga")
    # The other tenant's question and a perfect score of its own: never on this console.
    foreign = GoldenQuestion.objects.create(project=project_b, question="ZZBETA question", expected_url="https://b/")
    RetrievalEvaluation.objects.create(project=project_b, trigger="on_demand", questions=1, recall_at_3=0.25, mrr=0.25,
        results=[{"question_id": foreign.pk, "question": foreign.question, "expected_url": foreign.expected_url,
                  "rank": None}])  # fmt: skip
    hours, prices = local_site.url("en/hours.html"), local_site.url("en/prices.html")
    log_in(page, "olga")
    console = f"/admin/tenants/project/{project_a.pk}/change/"
    page.goto(console)
    assert "No golden questions yet" in page.inner_text("#retrieval")
    page.fill("#crawl-form input[name=sitemap]", local_site.url("sitemap.xml"))
    console_crawl(page, project_a, celery_worker)

    # The playground asks the worker's store as the bot does; each query is saved with the page that answers it.
    save_from_playground(page, project_a, SUNDAY, hours)
    save_from_playground(page, project_a, WINDOWS, prices)
    screenshot(page, "search-playground-golden.png")
    assert set(GoldenQuestion.objects.filter(project=project_a).values_list("question", "expected_url")) == {
        (SUNDAY, hours), (WINDOWS, prices)}  # fmt: skip

    page.goto(console)
    assert "2 golden questions, not evaluated yet." in page.inner_text("#retrieval")
    page.click("#golden-evaluate")
    page.wait_for_selector("text=Evaluation of the golden questions started")
    wait_until(lambda: RetrievalEvaluation.objects.filter(project=project_a).exists(), 60, "evaluation", celery_worker)
    page.goto(console)
    assert page.inner_text("#golden-recall .value") == "1.00"
    mrr_before = float(page.inner_text("#golden-mrr .value"))
    assert mrr_before > 0.5
    assert page.locator("#golden-warning").count() == 0
    assert page.locator("[data-blocker=retrieval_worse]").count() == 0

    # The site drops its opening hours page; a crawl of every source removes it from the knowledge base.
    local_site.sitemap_set([path for path in PAGES if path != "en/hours.html"])
    job = console_crawl(page, project_a, celery_worker)
    assert CrawlJob.objects.get(pk=job.pk).pages_removed == 1
    after_crawl = RetrievalEvaluation.objects.filter(project=project_a, trigger="crawl", job=job)
    wait_until(after_crawl.exists, 60, "the evaluation after the crawl", celery_worker)
    page.goto(console)

    assert page.inner_text("#golden-recall .value") == "0.50"
    assert page.inner_text("#golden-recall .trend") == "-0.50"
    assert float(page.inner_text("#golden-mrr .value")) < mrr_before
    assert page.inner_text("#golden-mrr .trend").startswith("-")
    warning = page.inner_text("#golden-warning")
    assert f"Crawl #{job.pk} made retrieval worse: 1 question lost its page." in warning
    assert f'"{SUNDAY}": {hours} was rank 1, now not found' in warning
    assert WINDOWS not in warning
    rows = {row.locator("td").first.inner_text(): row.get_attribute("data-rank")
            for row in page.locator("#golden-results tbody tr").all()}  # fmt: skip
    assert rows[SUNDAY] == "missing"
    assert rows[WINDOWS] != "missing"
    banner = page.inner_text("[data-blocker=retrieval_worse]")  # the console's banner at the top, with its fix
    assert f"since crawl #{job.pk}: recall@3 1.00 → 0.50" in banner
    assert "ZZBETA" not in page.inner_text("#console")
    page.locator("#retrieval").screenshot(path=str(ARTIFACTS / "console-golden-section.png"))
    screenshot(page, "console-golden-questions.png")
