"""The resumable crawl: discover -> fetch -> extract -> chunk -> embed -> upload, persisted per URL.

Each phase only touches pages (and chunks) whose previous output exists and whose own does not, so a
crawl killed at any point continues where it stopped. A page that fails records its reason and the
crawl goes on; nothing reaches Qdrant before a page has been chunked and embedded in full.
"""

import logging
import mimetypes
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from bots.llm.embeddings import embed_texts, embedding_dim, embedding_model_id
from bots.llm.types import CallContext
from knowledge.bm25 import BM25Stats, analyze, bm25_document_vector, bm25_fit, bm25_stats_load, bm25_stats_save
from knowledge.chunking import chunk_semantic, chunk_simple
from knowledge.extraction import ExtractionError, extract_document
from knowledge.fetching import FetchedPage, FetchError, fetch_url, http_client, sitemap_urls
from knowledge.models import Chunk as ChunkRow
from knowledge.models import CrawlJob, Page, Source, url_hash
from knowledge.vector_store import (
    ChunkPoint,
    collection_ensure,
    points_delete_by_urls,
    points_update_sparse,
    points_upsert,
)
from tenants.models import Project

logger = logging.getLogger(__name__)

FETCH_WORKERS = 3
EMBED_BATCH = 32
UPLOAD_BATCH = 50


def _log(project: Project, **more: object) -> dict[str, object]:
    return {"project_id": project.pk, **more}


# ----------------------------------------------------------------------------------------- creating jobs


def crawl_job_create(
    *,
    project: Project,
    urls: Iterable[str] = (),
    sitemap: str | None = None,
    files: Iterable[tuple[str, bytes]] = (),
    sources: Iterable[Source] = (),
    recrawl: bool = False,
    semantic_chunking: bool = False,
) -> CrawlJob:
    """A crawl of new URLs, a sitemap and uploaded files (name, bytes), and/or existing sources."""
    with transaction.atomic():
        job = CrawlJob.objects.create(project=project, recrawl=recrawl, semantic_chunking=semantic_chunking)
        new = [
            Source.objects.create(project=project, kind=Source.Kind.URL, url=url.strip()) for url in urls if url.strip()
        ]
        if sitemap:
            new.append(Source.objects.create(project=project, kind=Source.Kind.SITEMAP, url=sitemap))
        for name, data in files:
            # The title keeps relative folders ("en/prices.html"), so same-named files stay distinct pages.
            source = Source(project=project, kind=Source.Kind.FILE, title=name.lstrip("/")[:300])
            source.file.save(Path(name).name, ContentFile(data), save=True)
            new.append(source)
        job.sources.add(*new, *[s for s in sources if s.project_id == project.pk])
    return job


# ------------------------------------------------------------------------------------------------ phases


def _page_for(project: Project, source: Source, url: str, job: CrawlJob) -> Page:
    page, _ = Page.objects.get_or_create(
        project=project, url_hash=url_hash(url), defaults={"url": url, "source": source, "job": job}
    )
    if job.recrawl and page.job_id != job.pk:
        page_reset(page=page)
    Page.objects.filter(pk=page.pk).update(job=job)
    return page


def page_reset(*, page: Page) -> None:
    """Forget a page's phase outputs so that the next crawl fetches it again."""
    Page.objects.filter(pk=page.pk).update(
        status=Page.Status.PENDING, raw=None, fetched_at=None, extracted_at=None, chunked_at=None,
        embedded_at=None, uploaded_at=None, error="",
    )  # fmt: skip


def phase_discover(job: CrawlJob) -> None:
    project = job.project
    with http_client() as client:
        for source in job.sources.all():
            if source.kind == Source.Kind.URL:
                _page_for(project, source, source.url, job)
            elif source.kind == Source.Kind.SITEMAP:
                try:
                    for url in sitemap_urls(source.url, client=client):
                        _page_for(project, source, url, job)
                except FetchError as exc:
                    job.error = f"sitemap {source.url}: {exc}"
                    logger.warning("sitemap failed: %s", exc, extra=_log(project, url=source.url))
            else:
                page = _page_for(project, source, f"file:{source.title}", job)
                if page.fetched_at is None:
                    source.file.open("rb")
                    with source.file:
                        data = source.file.read()
                    content_type = mimetypes.guess_type(source.title)[0] or ""
                    Page.objects.filter(pk=page.pk).update(
                        raw=data, content_type=content_type, status=Page.Status.FETCHED, fetched_at=timezone.now()
                    )
    job.total_pages = job.pages.count()
    job.save(update_fields=["total_pages", "error"])


def _fail(page: Page, job: CrawlJob, reason: str) -> None:
    Page.objects.filter(pk=page.pk).update(status=Page.Status.FAILED, error=reason[:2000])
    CrawlJob.objects.filter(pk=job.pk).update(pages_failed=F("pages_failed") + 1, heartbeat_at=timezone.now())
    logger.info("page failed: %s", reason, extra=_log(job.project, url=page.url))


def _download(url: str) -> FetchedPage | FetchError:
    """Network only (runs on a fetch thread); the crawl's own thread writes the results."""
    try:
        with http_client() as client:
            return fetch_url(url, client=client)
    except FetchError as exc:
        return exc


def _job_pages(job: CrawlJob) -> QuerySet[Page]:
    return job.pages.exclude(status=Page.Status.FAILED)


def phase_fetch(job: CrawlJob, *, workers: int = FETCH_WORKERS) -> None:
    pending = list(_job_pages(job).filter(fetched_at__isnull=True).defer("raw"))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        futures = {pool.submit(_download, page.url): page for page in pending}
        for future in as_completed(futures):
            page, outcome = futures[future], future.result()
            if isinstance(outcome, FetchError):
                _fail(page, job, str(outcome))
                continue
            Page.objects.filter(pk=page.pk).update(
                raw=outcome.data, content_type=outcome.content_type, http_status=outcome.http_status,
                status=Page.Status.FETCHED, fetched_at=timezone.now(), error="",
            )  # fmt: skip
            CrawlJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())


def phase_extract(job: CrawlJob) -> None:
    for page in _job_pages(job).filter(fetched_at__isnull=False, extracted_at__isnull=True):
        try:
            document = extract_document(data=bytes(page.raw or b""), content_type=page.content_type, url=page.url)
        except ExtractionError as exc:
            _fail(page, job, str(exc))
            continue
        Page.objects.filter(pk=page.pk).update(
            title=document.title[:500], text=document.text, status=Page.Status.EXTRACTED, extracted_at=timezone.now()
        )


def phase_chunk(job: CrawlJob) -> None:
    project = job.project
    for page in _job_pages(job).filter(extracted_at__isnull=False, chunked_at__isnull=True).defer("raw"):
        if page.chunks.filter(uploaded_at__isnull=False).exists():
            points_delete_by_urls(collection=_collection(project), urls=[page.url])  # the page changed
        if job.semantic_chunking:
            chunks = chunk_semantic(page.text, title=page.title, project=project)
        else:
            chunks = chunk_simple(page.text, title=page.title)
        with transaction.atomic():
            page.chunks.all().delete()
            ChunkRow.objects.bulk_create(
                ChunkRow(project=project, page=page, index=i, topic=c.topic[:300], text=c.text)
                for i, c in enumerate(chunks)
            )
            Page.objects.filter(pk=page.pk).update(
                status=Page.Status.CHUNKED, chunked_at=timezone.now(), embedded_at=None, uploaded_at=None
            )


def embedding_input(chunk: ChunkRow) -> str:
    """The topic is prepended so that the vector carries what the chunk is about."""
    return f"Topic: {chunk.topic}\n\n{chunk.text}" if chunk.topic else chunk.text


def phase_embed(job: CrawlJob) -> None:
    project, model = job.project, embedding_model_id()
    pages = _job_pages(job).filter(chunked_at__isnull=False)
    stale = ChunkRow.objects.filter(page__in=pages).exclude(embedding_model=model).order_by("pk")
    context = CallContext(purpose="crawl_embed", project_id=project.pk)
    while batch := list(stale[:EMBED_BATCH]):
        result = embed_texts([embedding_input(chunk) for chunk in batch], context=context)
        for chunk, vector in zip(batch, result.vectors, strict=True):
            chunk.embedding, chunk.embedding_model, chunk.uploaded_at = vector, result.model, None
        ChunkRow.objects.bulk_update(batch, ["embedding", "embedding_model", "uploaded_at"])
        CrawlJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    pages.filter(embedded_at__isnull=True).update(status=Page.Status.EMBEDDED, embedded_at=timezone.now())


def _collection(project: Project) -> str:
    return collection_ensure(project_id=project.pk, model_id=embedding_model_id(), dim=embedding_dim())


def _chunk_terms(chunk: ChunkRow, language: str) -> list[str]:
    return analyze(f"{chunk.topic}\n{chunk.text}", language)


def phase_upload(job: CrawlJob) -> None:
    """Refit BM25 over the project's whole corpus, then upload what is new and refresh the rest."""
    project, model = job.project, embedding_model_id()
    collection = _collection(project)
    corpus = list(ChunkRow.objects.filter(project=project, embedding_model=model).select_related("page"))
    terms = {chunk.pk: _chunk_terms(chunk, project.language) for chunk in corpus}
    previous = bm25_stats_load(project=project)
    stats = bm25_fit(list(terms.values()), language=project.language, previous=previous)
    bm25_stats_save(project=project, stats=stats)

    fresh = [chunk for chunk in corpus if chunk.uploaded_at is None]
    for start in range(0, len(fresh), UPLOAD_BATCH):
        batch = fresh[start : start + UPLOAD_BATCH]
        points_upsert(collection=collection, points=[_point(chunk, terms[chunk.pk], stats) for chunk in batch])
        ChunkRow.objects.filter(pk__in=[chunk.pk for chunk in batch]).update(uploaded_at=timezone.now())
        CrawlJob.objects.filter(pk=job.pk).update(
            chunks_uploaded=F("chunks_uploaded") + len(batch), heartbeat_at=timezone.now()
        )
    # Corpus statistics moved (new documents change the average length): older points get new BM25 values.
    old = [chunk for chunk in corpus if chunk.uploaded_at is not None]
    if old and previous is not None and previous.avg_doc_len != stats.avg_doc_len:
        points_update_sparse(
            collection=collection,
            vectors={str(chunk.point_id): bm25_document_vector(terms[chunk.pk], stats) for chunk in old},
        )
    _job_pages(job).filter(embedded_at__isnull=False).update(status=Page.Status.UPLOADED, uploaded_at=timezone.now())


def _point(chunk: ChunkRow, terms: list[str], stats: BM25Stats) -> ChunkPoint:
    return ChunkPoint(
        point_id=str(chunk.point_id),
        dense=chunk.embedding,
        sparse=bm25_document_vector(terms, stats),
        payload={"project_id": chunk.project_id, "chunk_id": chunk.pk, "page_id": chunk.page_id,
                 "url": chunk.page.url, "topic": chunk.topic, "text": chunk.text},
    )  # fmt: skip


PHASES = [
    (CrawlJob.Phase.DISCOVER, phase_discover),
    (CrawlJob.Phase.FETCH, phase_fetch),
    (CrawlJob.Phase.EXTRACT, phase_extract),
    (CrawlJob.Phase.CHUNK, phase_chunk),
    (CrawlJob.Phase.EMBED, phase_embed),
    (CrawlJob.Phase.UPLOAD, phase_upload),
]


def crawl_job_run(*, job: CrawlJob) -> CrawlJob:
    """Run (or resume) a crawl job to its end; each phase skips what earlier runs finished."""
    CrawlJob.objects.filter(pk=job.pk).update(
        status=CrawlJob.Status.RUNNING, started_at=job.started_at or timezone.now(), heartbeat_at=timezone.now()
    )
    try:
        for phase, run in PHASES:
            CrawlJob.objects.filter(pk=job.pk).update(phase=phase, heartbeat_at=timezone.now())
            job.refresh_from_db()
            run(job)
    except Exception as exc:  # any failure ends the job visibly; finished work stays for a resume
        logger.exception("crawl failed", extra=_log(job.project, job_id=job.pk))
        CrawlJob.objects.filter(pk=job.pk).update(
            status=CrawlJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )
    else:
        pages = job.pages.all()
        nothing_found = job.total_pages == 0 and bool(job.error)
        CrawlJob.objects.filter(pk=job.pk).update(
            status=CrawlJob.Status.FAILED if nothing_found else CrawlJob.Status.DONE,
            phase=CrawlJob.Phase.DONE, finished_at=timezone.now(),
            pages_done=pages.filter(status=Page.Status.UPLOADED).count(),
            pages_failed=pages.filter(status=Page.Status.FAILED).count(),
        )  # fmt: skip
    job.refresh_from_db()
    return job


def knowledge_delete_urls(*, project: Project, urls: list[str]) -> int:
    """Remove pages and exactly their chunks (database and Qdrant); returns how many pages went."""
    pages = Page.objects.filter(project=project, url__in=urls)
    found = list(pages.values_list("url", flat=True))
    if found:
        points_delete_by_urls(collection=_collection(project), urls=found)
        pages.delete()
    return len(found)
