"""`manage.py crawl` runs the pipeline on the real worker, follows it to the end and exits with its verdict."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge.management.commands.crawl import EXIT_FAILED, EXIT_PARTIAL
from knowledge.models import CrawlJob, Page, Source
from knowledge.tasks import knowledge_search_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_crawl_command_follows_the_job_on_the_worker_to_the_end(project_a, local_site, celery_worker, tmp_path):
    document = tmp_path / "offer.txt"
    document.write_text("Our office cleaning contract costs 900 euros per month.", encoding="utf-8")
    out = StringIO()
    call_command(
        "crawl", "alpha", "--urls", local_site.url("en/prices.html"), "--files", str(document),
        "--schedule", "daily", "--timeout", "120", stdout=out,
    )  # fmt: skip

    output = out.getvalue()
    assert "crawl job #" in output
    assert "pages: 2 added, 0 changed, 0 unchanged, 0 removed, 0 failed of 2" in output
    assert "done" in output
    assert Page.objects.filter(project=project_a, status="uploaded").count() == 2
    assert set(Source.objects.filter(project=project_a).values_list("schedule", flat=True)) == {"daily"}
    # The web process searches through the worker, which owns the Qdrant store.
    hits = knowledge_search_task.delay(project_a.pk, "window washing price").get(timeout=30)
    assert hits[0]["url"] == local_site.url("en/prices.html")

    # The same sources again: nothing changed, nothing embedded, still a success.
    out = StringIO()
    call_command("crawl", "alpha", "--all", "--timeout", "120", stdout=out)
    assert "pages: 0 added, 0 changed, 2 unchanged, 0 removed, 0 failed of 2" in out.getvalue()
    assert "embedding: 0 call(s)" in out.getvalue()
    assert Source.objects.filter(project=project_a).count() == 2  # asked again, not added twice


def test_a_crawl_with_some_failed_pages_exits_partial_and_lists_them(project_a, local_site, celery_worker):
    out = StringIO()
    urls = f"{local_site.url('en/prices.html')},{local_site.url('missing.html')}"
    with pytest.raises(CommandError, match="partly failed") as raised:
        call_command("crawl", "alpha", "--urls", urls, "--timeout", "120", stdout=out)
    assert raised.value.returncode == EXIT_PARTIAL
    assert f"failed: {local_site.url('missing.html')}: HTTP 404" in out.getvalue()
    assert CrawlJob.objects.get().status == "partial"


def test_a_crawl_of_three_failing_pages_fails_with_a_non_zero_exit_and_says_why(project_a, local_site, celery_worker):
    out = StringIO()
    urls = [local_site.url("missing.html"), local_site.url("broken.pdf"), "http://127.0.0.1:9/x"]
    with pytest.raises(CommandError, match="failed") as raised:
        call_command("crawl", "alpha", "--urls", ",".join(urls), "--timeout", "120", stdout=out)

    assert raised.value.returncode == EXIT_FAILED
    output = out.getvalue()
    assert f"failed: {urls[0]}: HTTP 404" in output
    assert f"failed: {urls[1]}: broken PDF" in output
    assert f"failed: {urls[2]}: unreachable host" in output
    assert "0 added, 0 changed, 0 unchanged, 0 removed, 3 failed of 3" in output
    assert "[failed]" in output
    job = CrawlJob.objects.get()
    assert (job.status, job.pages_failed, job.pages_done) == ("failed", 3, 0)


def test_a_crawl_that_finds_nothing_fails_with_a_non_zero_exit(project_a, local_site, celery_worker):
    with pytest.raises(CommandError, match="failed") as raised:
        call_command("crawl", "alpha", "--sitemap", local_site.url("no-sitemap.xml"), "--timeout", "60",
                     stdout=StringIO())  # fmt: skip
    assert raised.value.returncode == EXIT_FAILED
    assert CrawlJob.objects.get().status == "failed"


def test_bad_arguments_are_clear_errors_and_start_nothing(project_a, project_b, tmp_path):
    sheet = tmp_path / "prices.exe"
    sheet.write_bytes(b"MZ")
    cases = [
        ((), "nothing to crawl"),
        (("--urls", "not-a-url"), "not-a-url: not a web address"),
        (("--urls", "ftp://files.example/a.pdf"), "only http and https"),
        (("--sitemap", "javascript:alert(1)"), "sitemap javascript:alert(1): not a web address"),
        (("--files", "/nonexistent.pdf"), "cannot read /nonexistent.pdf"),
        (("--files", str(sheet)), "prices.exe: unsupported file type .exe"),
    ]
    for arguments, message in cases:
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("crawl", "alpha", *arguments, stdout=StringIO())
    with pytest.raises(CommandError, match="no project"):
        call_command("crawl", "nope", "--urls", "http://x", stdout=StringIO())
    project_b.kind = "matching"
    project_b.save()
    with pytest.raises(CommandError, match="only sales projects"):
        call_command("crawl", "beta", "--urls", "https://shop.example/", stdout=StringIO())
    assert not CrawlJob.objects.exists()
    assert not Source.objects.exists()
