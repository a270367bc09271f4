"""A corpus of hostile documents uploaded for a crawl: each fails alone with a clear reason, the good document is
indexed, the crawl finishes, and another tenant's knowledge base is untouched."""

import io
import zipfile

import pytest

from knowledge.models import Chunk, CrawlJob, Page
from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.search import knowledge_search
from knowledge.services import crawl_job_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD = ("prices.txt", "Window washing costs 7 dollars per window.\n\nCarpet cleaning is 3 dollars a square metre.")
HOSTILE = {
    "bomb.docx": (zip_bytes({"word/document.xml": b"\0" * (20 * 1024 * 1024)}), "zip bomb"),
    "random.docx": (bytes(range(256)) * 40, "broken docx"),
    "truncated.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj <<", "pdf"),
    "not-a-sheet.xlsx": (zip_bytes({"hello.txt": b"not a workbook"}), "xlsx"),
    "empty.txt": (b"   \n\n  ", "empty"),
    "binary.exe": (b"MZ\x90\x00" + bytes(200), "unsupported"),
}
# Text that PostgreSQL cannot store as is (NUL) or that is not valid in its declared encoding: kept, cleaned.
AWKWARD = {
    "nul.txt": b"Opening hours\x00: Monday to Friday, 9 to 18.\x00",
    "latin1.txt": "Café prices: espresso 2 EUR, crème brûlée 4 EUR.".encode("latin-1"),
    "nul.html": b"<html><body><main><h1>Team</h1><p>Our team\x00 of twelve cleaners works every day.</p>"
    b"</main></body></html>",
}


def test_hostile_documents_fail_alone_with_a_reason(project_a, project_b):
    kept = crawl_job_run(job=crawl_job_create(project=project_b, files=[("kept.txt", b"Beta repairs roofs.")]))
    assert kept.status == CrawlJob.Status.DONE
    beta_chunks = list(Chunk.objects.filter(project=project_b).values_list("pk", "text"))

    files = [(GOOD[0], GOOD[1].encode()), *((name, data) for name, (data, _) in HOSTILE.items()), *AWKWARD.items()]
    job = crawl_job_run(job=crawl_job_create(project=project_a, files=files))

    assert job.status == CrawlJob.Status.PARTIAL, job.error
    pages = {page.url.removeprefix("file:"): page for page in Page.objects.filter(job=job)}
    for name, (_, reason) in HOSTILE.items():
        page = pages[name]
        assert page.status == Page.Status.FAILED, name
        assert reason in page.error.lower().replace("zip bomb?", "zip bomb"), (name, page.error)
        assert not Chunk.objects.filter(page=page).exists()
    for name in [GOOD[0], *AWKWARD]:
        assert pages[name].status == Page.Status.UPLOADED, (name, pages[name].error)
    texts = " ".join(Chunk.objects.filter(project=project_a).values_list("text", flat=True))
    assert "\x00" not in texts
    assert "Monday to Friday" in texts
    assert "twelve cleaners" in texts
    assert "espresso" in texts
    assert job.pages_done == 1 + len(AWKWARD)
    assert job.pages_failed == len(HOSTILE)
    [best, *_] = knowledge_search(project=project_a, query="window washing price")
    assert best.url == f"file:{GOOD[0]}"
    # The other tenant's knowledge base is as it was.
    assert list(Chunk.objects.filter(project=project_b).values_list("pk", "text")) == beta_chunks
    assert all(hit.url == "file:kept.txt" for hit in knowledge_search(project=project_b, query="roofs windows"))


def test_an_enormous_download_is_refused_without_reading_it(project_a, local_site):
    job = crawl_job_run(job=crawl_job_create(project=project_a, urls=[local_site.url("huge")]))
    [page] = Page.objects.filter(job=job)
    assert page.status == Page.Status.FAILED
    assert "too large" in page.error
    assert page.raw is None
