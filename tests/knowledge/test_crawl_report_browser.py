"""An operator in a real browser opens a crawl whose three pages all failed: it says Failed and why, page by page."""

import pytest

from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.services import crawl_job_create
from tenants.models import Membership
from tests.console.browser import chromium, log_in, page, screenshot
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["chromium", "page"]  # fixtures


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def test_the_job_page_of_a_failed_crawl_lists_each_page_and_its_reason(page, project_a, project_b, local_site):
    MembershipFactory(project=project_a, role=Membership.Role.OPERATOR, user__username="olga")
    urls = [local_site.url("missing.html"), local_site.url("broken.pdf"), "http://127.0.0.1:9/price-list"]
    for _ in range(3):  # three failed runs in a row: the console warns about the sources
        job = crawl_job_run(job=crawl_job_create(project=project_a, urls=urls))
    crawl_job_run(job=crawl_job_create(project=project_b, urls=[local_site.url("en/prices.html")]))
    assert job.status == "failed"

    log_in(page, "olga")
    page.goto(f"/admin/knowledge/crawljob/{job.pk}/change/")
    assert page.inner_text(".crawl-status") == "Failed"
    assert "0 added, 0 changed, 0 unchanged, 0 removed, 3 failed of 3" in page.inner_text("#content")
    rows = page.locator(".crawl-report tbody tr:has(td.field-outcome)")
    report = {row.locator("td.field-page_link").inner_text(): row.locator("td.field-reason").inner_text()
              for row in rows.all()}  # fmt: skip
    assert set(report) == set(urls)
    assert report[urls[0]] == "HTTP 404"
    assert report[urls[1]].startswith("broken PDF")
    assert report[urls[2]].startswith("unreachable host")
    # Each reason is on screen, wrapped inside the table rather than cut off at the right edge.
    for cell in page.locator(".crawl-report td.field-reason").all():
        box = cell.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1400
    screenshot(page, "crawl-job-failed.png")

    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")
    section = page.inner_text("#knowledge-freshness")
    assert f"#{job.pk}" in section
    assert "Failed" in section
    warnings = page.locator("#knowledge-freshness .knowledge-warning").all_inner_texts()
    assert len(warnings) == 3
    assert all("failed 3 crawls in a row" in warning for warning in warnings)
    page.click(f"#crawl-reports a:text('#{job.pk}')")
    page.wait_for_url(f"**/knowledge/crawljob/{job.pk}/change/")
    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")
    page.locator("#knowledge-freshness").scroll_into_view_if_needed()
    screenshot(page, "console-crawl-reports.png")
