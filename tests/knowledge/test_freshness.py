"""Re-crawls of a local site that changes between runs: only what changed costs embedding calls.

Embedding calls are counted where they cross the wire (the fake OpenAI-compatible embeddings endpoint),
or, where search quality matters, with the offline encoder through the crawl's own counters.
"""

import threading

import pytest
from django.db import connection

from knowledge import pipeline, vector_store
from knowledge.models import Chunk, CrawlJob, Page, PageReport, Source
from knowledge.pipeline import crawl_job_run, embedding_input
from knowledge.qdrant_store import qdrant_close
from knowledge.search import knowledge_search
from knowledge.services import crawl_job_create
from knowledge.vector_store import points_count
from tests.knowledge.site import PAGES

pytestmark = pytest.mark.django_db

OLD_PRICE, NEW_PRICE = "7 dollars per window", "9 dollars per window"
STORE_WRITES = {"upsert", "replace", "update_sparse", "delete_ids", "delete_urls", "set_payload"}


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


@pytest.fixture
def wire_embeddings(fake_llm, settings):
    """Embeddings from the fake OpenAI-compatible endpoint, so that every call is recorded on the wire."""
    settings.EMBEDDING_MODEL = "openai/text-embedding-3-small"
    settings.EMBEDDING_DIM = 16
    return fake_llm


def embedded_inputs(fake_llm) -> list[str]:
    return [text for request in fake_llm.requests_to("embeddings") for text in request.body["input"]]


def crawl_sitemap(project, site) -> CrawlJob:
    return crawl_job_run(job=crawl_job_create(project=project, sitemap=site.url("sitemap.xml")))


def recrawl(project, **kwargs) -> CrawlJob:
    return crawl_job_run(job=crawl_job_create(project=project, sources=project.knowledge_sources.all(), **kwargs))


def outcomes(job: CrawlJob) -> dict[str, tuple[str, str]]:
    return {report.url.rsplit("/", 2)[-2] + "/" + report.url.rsplit("/", 1)[-1]: (report.outcome, report.reason)
            for report in job.reports.all()}  # fmt: skip


def collection(project) -> str:
    return pipeline._collection(project)


@pytest.mark.parametrize("validator", ["last-modified", "etag"])
def test_an_unchanged_site_makes_no_embedding_call_and_is_answered_304(
    project_a, project_b, local_site, wire_embeddings, validator
):
    local_site.etags = validator == "etag"
    first = crawl_sitemap(project_a, local_site)
    crawl_sitemap(project_b, local_site)  # another tenant of the same site
    assert first.status == "done", first.error
    assert first.pages_added == len(PAGES)
    calls_before = len(wire_embeddings.requests_to("embeddings"))
    assert calls_before > 0

    again = recrawl(project_a)

    assert again.status == "done", again.error
    assert len(wire_embeddings.requests_to("embeddings")) == calls_before  # not one embedding call
    assert (again.embedding_calls, again.chunks_embedded) == (0, 0)
    assert again.pages_unchanged == len(PAGES)
    assert again.not_modified == len(PAGES)
    for path in PAGES:
        assert local_site.answers[(path, 304)] == 1, path
        assert outcomes(again)[path] == ("unchanged", "304 Not Modified")
    assert Chunk.objects.filter(project=project_a, version=1).count() == Chunk.objects.filter(project=project_a).count()


def test_an_edited_page_is_re_embedded_alone(project_a, project_b, local_site, wire_embeddings):
    crawl_sitemap(project_a, local_site)
    crawl_sitemap(project_b, local_site)
    other_tenant = list(Chunk.objects.filter(project=project_b).values_list("pk", "text", "version"))
    before = len(embedded_inputs(wire_embeddings))
    local_site.edit("en/prices.html", OLD_PRICE, NEW_PRICE)
    local_site.touch("en/hours.html")  # a newer date, the same bytes

    job = recrawl(project_a)

    assert job.status == "done", job.error
    report = outcomes(job)
    assert report["en/prices.html"][0] == "changed"
    assert report["en/hours.html"] == ("unchanged", "same content")
    assert report["ru/ceny.html"] == ("unchanged", "304 Not Modified")
    assert (job.pages_changed, job.pages_unchanged) == (1, 3)
    prices = Page.objects.get(project=project_a, url=local_site.url("en/prices.html"))
    new_chunks = list(prices.chunks.all())
    # The embedding calls of this crawl carried exactly the edited page's new chunks, nothing else.
    assert sorted(embedded_inputs(wire_embeddings)[before:]) == sorted(embedding_input(c) for c in new_chunks)
    assert job.chunks_embedded == len(new_chunks)
    assert {chunk.version for chunk in new_chunks} == {2}
    texts = " ".join(Chunk.objects.filter(project=project_a).values_list("text", flat=True))
    assert NEW_PRICE in texts
    assert OLD_PRICE not in texts
    # The store holds each chunk once: the old version's points left with the swap.
    assert points_count(collection=collection(project_a)) == Chunk.objects.filter(project=project_a).count()
    assert list(Chunk.objects.filter(project=project_b).values_list("pk", "text", "version")) == other_tenant


def test_recrawl_re_embeds_everything_when_asked(project_a, local_site, wire_embeddings):
    crawl_sitemap(project_a, local_site)
    chunks = Chunk.objects.filter(project=project_a).count()

    job = recrawl(project_a, recrawl=True)

    assert job.status == "done"
    assert job.pages_changed == len(PAGES)
    assert job.chunks_embedded == chunks
    assert points_count(collection=collection(project_a)) == chunks


def test_a_sitemap_lastmod_that_did_not_move_skips_the_fetch(project_a, local_site, wire_embeddings):
    local_site.sitemap_set(list(PAGES), lastmod={path: "2026-11-01" for path in PAGES})
    crawl_sitemap(project_a, local_site)
    hits = dict(local_site.hits)
    local_site.sitemap_set(
        list(PAGES), lastmod={**{path: "2026-11-01" for path in PAGES}, "en/prices.html": "2026-12-01"}
    )
    local_site.edit("en/prices.html", OLD_PRICE, NEW_PRICE)

    job = recrawl(project_a)

    assert outcomes(job)["en/hours.html"] == ("unchanged", "sitemap lastmod 2026-11-01 unchanged")
    assert outcomes(job)["en/prices.html"][0] == "changed"
    assert local_site.hits["en/hours.html"] == hits["en/hours.html"]  # not even asked for
    assert local_site.hits["en/prices.html"] == hits["en/prices.html"] + 1


def test_pages_that_vanish_lose_their_chunks_and_new_ones_are_added(project_a, project_b, local_site):
    crawl_sitemap(project_a, local_site)
    crawl_sitemap(project_b, local_site)
    other_tenant = Chunk.objects.filter(project=project_b).count()
    contacts = local_site.url("ru/kontakty.html")
    contact_chunks = Chunk.objects.filter(page__url=contacts, project=project_a).count()
    total = points_count(collection=collection(project_a))
    local_site.add("en/offers.html", "Offers", "<h1>Offers</h1><p>Every tenth cleaning is free of charge.</p>")
    local_site.sitemap_set(["en/prices.html", "en/hours.html", "ru/ceny.html", "en/offers.html"])

    job = recrawl(project_a)

    assert job.status == "done", job.error
    assert outcomes(job)["ru/kontakty.html"] == ("removed", "gone from the sitemap")
    assert outcomes(job)["en/offers.html"][0] == "added"
    assert not Page.objects.filter(project=project_a, url=contacts).exists()
    offers = Chunk.objects.filter(project=project_a, page__url=local_site.url("en/offers.html")).count()
    assert points_count(collection=collection(project_a)) == total - contact_chunks + offers
    assert all(hit.url != contacts for hit in knowledge_search(project=project_a, query="телефон офиса"))
    [best, *_] = knowledge_search(project=project_a, query="free cleaning offer")
    assert best.url.endswith("offers.html")
    assert Chunk.objects.filter(project=project_b).count() == other_tenant  # the other tenant keeps its copy


def test_a_page_answering_404_twice_is_removed_the_second_time(project_a, local_site):
    crawl_sitemap(project_a, local_site)
    hours = local_site.url("en/hours.html")
    local_site.remove("en/hours.html")

    first = recrawl(project_a)

    assert first.status == "partial"
    outcome, reason = outcomes(first)["en/hours.html"]
    assert outcome == "failed"
    assert "HTTP 404 (removed if it answers so again)" in reason
    assert "the last good version stays searchable" in reason
    assert Chunk.objects.filter(page__url=hours, uploaded_at__isnull=False).exists()
    assert knowledge_search(project=project_a, query="Are you open on Sunday?")[0].url == hours

    second = recrawl(project_a)

    assert second.status == "done"
    assert outcomes(second)["en/hours.html"] == ("removed", "HTTP 404 2 crawls in a row")
    assert not Chunk.objects.filter(page__url=hours).exists()
    assert points_count(collection=collection(project_a)) == Chunk.objects.filter(project=project_a).count()
    assert all(hit.url != hours for hit in knowledge_search(project=project_a, query="Are you open on Sunday?"))


@pytest.mark.django_db(transaction=True)
def test_no_search_during_the_swap_finds_both_versions_or_neither(project_a, project_b, local_site, monkeypatch):
    query = "How much is window washing?"
    crawl_job_run(job=crawl_job_create(project=project_a, urls=[local_site.url(p) for p in PAGES]))
    crawl_job_run(job=crawl_job_create(project=project_b, urls=[local_site.url("en/prices.html")]))
    assert OLD_PRICE in " ".join(hit.text for hit in knowledge_search(project=project_a, query=query))
    local_site.edit("en/prices.html", OLD_PRICE, NEW_PRICE)
    seen: list[str] = []

    def search() -> None:
        seen.append(" ".join(hit.text for hit in knowledge_search(project=project_a, query=query)))

    # A search right after every write request the store receives during the crawl (between two requests
    # is where a swap done in two steps would show both versions or neither), and a thread searching all along.
    store = vector_store.store_engine

    class SearchAfterEachWrite:
        def __init__(self, client) -> None:
            self.client = client

        def __getattr__(self, name: str):
            method = getattr(self.client, name)
            if name not in STORE_WRITES:
                return method

            def write(*args, **kwargs):
                result = method(*args, **kwargs)
                search()
                return result

            return write

    monkeypatch.setattr(vector_store, "store_engine", lambda: SearchAfterEachWrite(store()))
    running = threading.Event()
    running.set()

    def keep_searching() -> None:
        while running.is_set():
            search()
        connection.close()  # this thread's own database connection

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        job = crawl_job_run(job=crawl_job_create(project=project_a, sources=project_a.knowledge_sources.all()))
    finally:
        running.clear()
        searcher.join()

    assert job.pages_changed == 1
    assert len(seen) >= 4
    both = [text for text in seen if OLD_PRICE in text and NEW_PRICE in text]
    neither = [text for text in seen if OLD_PRICE not in text and NEW_PRICE not in text]
    assert not both, f"{len(both)} of {len(seen)} searches found both versions"
    assert not neither, f"{len(neither)} of {len(seen)} searches found neither version"
    assert NEW_PRICE in seen[-1]
    # The other tenant still answers its own (old) price.
    assert OLD_PRICE in " ".join(hit.text for hit in knowledge_search(project=project_b, query=query))


def test_a_job_whose_every_page_failed_is_failed_and_its_source_counts_a_failed_run(project_a, local_site):
    urls = [local_site.url("missing.html"), local_site.url("broken.pdf"), "http://127.0.0.1:9/x"]
    for run in (1, 2):
        job = crawl_job_run(job=crawl_job_create(project=project_a, urls=urls))
        assert job.status == "failed"
        assert (job.pages_failed, job.pages_done) == (3, 0)
        assert job.phase == "done"
        assert set(job.reports.values_list("outcome", flat=True)) == {PageReport.Outcome.FAILED}
        assert all(report.reason for report in job.reports.all())
        assert set(Source.objects.filter(project=project_a).values_list("failed_runs", flat=True)) == {run}
