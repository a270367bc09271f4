"""Crawling a local website end to end into Qdrant (in memory), in-process."""

import time

import psycopg
import pytest
from django.db import connection

from knowledge import pipeline
from knowledge.models import Chunk, CrawlJob, Page
from knowledge.pipeline import crawl_job_run, knowledge_delete_urls
from knowledge.qdrant_store import qdrant_close
from knowledge.search import knowledge_search
from knowledge.services import crawl_job_create
from knowledge.vector_store import points_count

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def crawl(project, urls, **kwargs) -> CrawlJob:
    return crawl_job_run(job=crawl_job_create(project=project, urls=urls, **kwargs))


def test_a_crawled_site_answers_english_and_russian_questions(project_a, local_site):
    project_a.language = "en"
    urls = [local_site.url(path) for path in ("en/prices.html", "en/hours.html", "ru/ceny.html", "ru/kontakty.html")]
    job = crawl(project_a, urls)

    assert job.status == "done", job.error
    assert job.pages_done == 4
    assert Page.objects.filter(project=project_a, status="uploaded").count() == 4
    [best, *_] = knowledge_search(project=project_a, query="How much is window washing?")
    assert best.url.endswith("en/prices.html")
    assert "7 dollars per window" in best.text
    [best, *_] = knowledge_search(project=project_a, query="сколько стоит химчистка ковров")
    assert best.url.endswith("ru/ceny.html")
    hours = knowledge_search(project=project_a, query="Are you open on Sunday?")
    assert hours[0].url.endswith("en/hours.html")
    assert len(knowledge_search(project=project_a, query="prices", top_k=10)) <= 3


def test_navigation_and_footer_do_not_become_chunks(project_a, local_site):
    crawl(project_a, [local_site.url("en/hours.html")])
    texts = " ".join(Chunk.objects.values_list("text", flat=True))
    assert "Monday to Saturday" in texts
    assert "All rights reserved" not in texts


def test_bad_pages_are_recorded_with_a_reason_and_the_crawl_goes_on(project_a, local_site):
    bad = {"missing.html": "404", "error": "500", "loop": "redirect loop", "huge": "too large",
           "broken.pdf": "", "image.png": "unsupported", "empty.html": "empty"}  # fmt: skip
    job = crawl(project_a, [local_site.url("en/prices.html"), *map(local_site.url, bad), "http://127.0.0.1:9/x"])

    assert job.status == "partial"  # some pages failed: never shown as done
    assert job.pages_done == 1
    assert job.pages_failed == len(bad) + 1
    errors = {page.url.rsplit("/", 1)[-1]: page.error for page in Page.objects.filter(status="failed")}
    for path, reason in bad.items():
        assert reason.lower() in errors[path].lower(), (path, errors[path])
    assert "unreachable" in errors["x"]
    # Only the good page's chunks reached the collection.
    assert {hit.url for hit in knowledge_search(project=project_a, query="window washing price")} <= {
        local_site.url("en/prices.html")
    }


def test_a_crawl_killed_midway_resumes_without_redoing_finished_urls(project_a, local_site, monkeypatch):
    urls = [local_site.url("en/prices.html"), local_site.url("en/hours.html")]
    job = crawl_job_create(project=project_a, urls=urls)

    def killed(job: CrawlJob) -> None:
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(pipeline, "PHASES", [*pipeline.PHASES[:3], (CrawlJob.Phase.CHUNK, killed)])
    with pytest.raises(KeyboardInterrupt):
        crawl_job_run(job=job)
    assert Page.objects.filter(extracted_at__isnull=False).count() == 2
    monkeypatch.undo()

    job = crawl_job_run(job=job)
    assert job.status == "done"
    assert local_site.hits["en/prices.html"] == 1
    assert local_site.hits["en/hours.html"] == 1
    assert knowledge_search(project=project_a, query="window washing price")


def test_sitemap_crawl_and_recrawl_fetches_again(project_a, local_site):
    job = crawl_job_run(job=crawl_job_create(project=project_a, sitemap=local_site.url("sitemap.xml")))
    assert job.total_pages == 4
    assert job.status == "done"
    again = crawl_job_run(job=crawl_job_create(project=project_a, sources=job.sources.all(), recrawl=True))
    assert again.status == "done"
    assert local_site.hits["en/prices.html"] == 2


def test_uploaded_files_are_crawled(project_a):
    text = "Our office cleaning contract costs 900 euros per month for 300 square meters."
    job = crawl_job_run(job=crawl_job_create(project=project_a, files=[("offer.txt", text.encode())]))
    assert job.status == "done", job.error
    [hit, *_] = knowledge_search(project=project_a, query="office cleaning contract monthly cost")
    assert hit.url == "file:offer.txt"


def test_deleting_urls_removes_exactly_their_chunks(project_a, local_site):
    urls = [local_site.url("en/prices.html"), local_site.url("en/hours.html")]
    crawl(project_a, urls)
    hours_chunks = Chunk.objects.filter(page__url=urls[1]).count()
    collection = pipeline._collection(project_a)
    before = points_count(collection=collection)

    assert knowledge_delete_urls(project=project_a, urls=[urls[0]]) == 1
    assert points_count(collection=collection) == before - (before - hours_chunks)
    assert not Page.objects.filter(url=urls[0]).exists()
    assert all(hit.url == urls[1] for hit in knowledge_search(project=project_a, query="window washing price"))


def test_tenants_never_see_each_others_chunks(project_a, project_b, local_site):
    crawl(project_a, [local_site.url("en/prices.html")])
    crawl(project_b, [local_site.url("en/hours.html")])
    assert all(hit.url.endswith("prices.html") for hit in knowledge_search(project=project_a, query="open on Sunday"))
    assert all(hit.url.endswith("hours.html") for hit in knowledge_search(project=project_b, query="window price"))


def _advisory_lock_freed(first: int, second: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s",
                [first, second],
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError("the closed connection's advisory lock is still held")


def test_a_job_another_process_is_running_is_left_to_it(project_a, local_site):
    """A second delivery of a crawl's task (a broker redelivery, a resume racing the run) must not run the
    crawl a second time beside the first: it would count pages twice and stamp the job's times over."""
    job = crawl_job_create(project=project_a, urls=[local_site.url("en/prices.html")])
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s, %s)", [pipeline.CRAWL_LOCK_NAMESPACE, job.pk])
        crawl_job_run(job=job)
        job.refresh_from_db()
        assert (job.status, job.started_at, Page.objects.filter(project=project_a).count()) == ("queued", None, 0)
    # The other run went (its connection, and so its claim, with it): the next delivery runs the job. The
    # server ends the closed connection's backend, and frees its lock, a moment after the client returns.
    _advisory_lock_freed(pipeline.CRAWL_LOCK_NAMESPACE, job.pk)
    assert crawl_job_run(job=job).status == "done"
