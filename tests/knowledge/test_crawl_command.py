"""`manage.py crawl` runs the pipeline on the real worker and follows it to the end."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import CrawlJob, Page
from knowledge.tasks import knowledge_search_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_crawl_command_follows_the_job_on_the_worker_to_the_end(project_a, local_site, celery_worker, tmp_path):
    document = tmp_path / "offer.txt"
    document.write_text("Our office cleaning contract costs 900 euros per month.", encoding="utf-8")
    out = StringIO()
    call_command(
        "crawl", "alpha", "--urls", f"{local_site.url('en/prices.html')},{local_site.url('missing.html')}",
        "--files", str(document), "--timeout", "120", stdout=out,
    )  # fmt: skip

    output = out.getvalue()
    assert "crawl job #" in output
    assert "done" in output
    assert "failed: " in output
    assert "HTTP 404" in output
    assert Page.objects.filter(project=project_a, status="uploaded").count() == 2
    # The web process searches through the worker, which owns the Qdrant store.
    hits = knowledge_search_task.delay(project_a.pk, "window washing price").get(timeout=30)
    assert hits[0]["url"] == local_site.url("en/prices.html")


def test_a_crawl_that_finds_nothing_fails_with_a_non_zero_exit(project_a, local_site, celery_worker):
    with pytest.raises(CommandError, match="failed"):
        call_command("crawl", "alpha", "--sitemap", local_site.url("no-sitemap.xml"), "--timeout", "60",
                     stdout=StringIO())  # fmt: skip
    assert CrawlJob.objects.get().status == "failed"


def test_bad_arguments_are_clear_errors(project_a):
    with pytest.raises(CommandError, match="nothing to crawl"):
        call_command("crawl", "alpha", stdout=StringIO())
    with pytest.raises(CommandError, match="no project"):
        call_command("crawl", "nope", "--urls", "http://x", stdout=StringIO())
    with pytest.raises(CommandError, match="cannot read"):
        call_command("crawl", "alpha", "--files", "/nonexistent.pdf", stdout=StringIO())
    assert not CrawlJob.objects.exists()
