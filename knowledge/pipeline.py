"""The resumable, incremental crawl: discover -> fetch -> extract -> chunk -> embed -> upload, per URL.

Each phase only touches pages (and chunks) whose previous output exists and whose own does not, so a
crawl killed at any point continues where it stopped. A page that fails records its reason and the
crawl goes on; nothing reaches the store before a page has been chunked and embedded in full.

Re-crawls are incremental: a known page is fetched conditionally (ETag, Last-Modified) or not at all
(sitemap lastmod unchanged), and its bytes and then its text are compared with the searchable version's
hashes, so an unchanged page is neither re-chunked nor re-embedded. A changed page gets a new version
whose chunks replace the old ones in one store request. Every page gets one line in the job's report
(added, changed, unchanged, removed, failed with its reason), and the job ends done, partial or failed.
"""

import hashlib
import logging
import mimetypes
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import Decimal

import httpx
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from bots.llm.embeddings import embed_texts, embedding_dim, embedding_model_id
from bots.llm.types import CallContext
from core.db_locks import session_lock
from knowledge.bm25 import BM25Stats, analyze, bm25_document_vector, bm25_fit, bm25_stats_load, bm25_stats_save
from knowledge.chunking import chunk_semantic, chunk_simple
from knowledge.extraction import ExtractionError, extract_document
from knowledge.fetching import FetchedPage, FetchError, fetch_url, http_client, sitemap_entries
from knowledge.models import Chunk as ChunkRow
from knowledge.models import CrawlJob, Page, PageReport, Source, url_hash
from knowledge.vector_store import (
    ChunkPoint,
    collection_ensure,
    points_delete_by_ids,
    points_replace,
    points_update_sparse,
    points_upsert,
)
from tenants.models import Project

logger = logging.getLogger(__name__)

FETCH_WORKERS = 3
EMBED_BATCH = 32
UPLOAD_BATCH = 50  # pages per store request (each with all its chunks)
CRAWL_LOCK_NAMESPACE = 0xC4A1  # first key of the advisory locks that let one run of a crawl job go at a time
GONE_AFTER = 2  # a searchable page that answers 404/410 this many crawls in a row is removed


def _log(project: Project, **more: object) -> dict[str, object]:
    return {"project_id": project.pk, **more}


# ------------------------------------------------------------------------------------------------ reports


def _report(
    job: CrawlJob, page: Page, outcome: str, reason: str = "", *, http_status: int | None = None, chunks: int = 0
) -> None:
    """One line of the job's report per page (a resumed job overwrites its own line)."""
    _reports_write([_report_row(job, page, outcome, reason, http_status=http_status, chunks=chunks)])


def _report_row(
    job: CrawlJob, page: Page, outcome: str, reason: str = "", *, http_status: int | None = None, chunks: int = 0
) -> PageReport:
    return PageReport(job=job, url=page.url, project=job.project, page=page, source_id=page.source_id,
                      outcome=outcome, reason=reason[:2000], http_status=http_status, chunks=chunks)  # fmt: skip


def _reports_write(rows: list[PageReport]) -> None:
    PageReport.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["job", "url"],
        update_fields=["page", "source", "outcome", "reason", "http_status", "chunks"],
    )  # fmt: skip


def _is_live(page: Page) -> bool:
    """Search has chunks of this page now."""
    return page.chunks.filter(uploaded_at__isnull=False).exists()


def _fail(page: Page, job: CrawlJob, reason: str, *, http_status: int | None = None) -> None:
    """A page without a searchable version failed: it is marked failed with its reason."""
    Page.objects.filter(pk=page.pk).update(status=Page.Status.FAILED, error=reason[:2000])
    page.chunks.filter(uploaded_at__isnull=True).delete()
    _report(job, page, PageReport.Outcome.FAILED, reason, http_status=http_status)
    logger.info("page failed: %s", reason, extra=_log(job.project, url=page.url))


def _fail_keeping_live(page: Page, job: CrawlJob, reason: str, **updates: object) -> None:
    """A searchable page failed this time: its last good version stays searchable, the report says why."""
    reason = f"{reason}; the last good version stays searchable"
    Page.objects.filter(pk=page.pk).update(error=reason[:2000], status=Page.Status.UPLOADED, **updates)
    _report(job, page, PageReport.Outcome.FAILED, reason, http_status=page.http_status)
    logger.info("page failed, old version kept: %s", reason, extra=_log(job.project, url=page.url))


def _unchanged(job: CrawlJob, page: Page, reason: str, *, http_status: int | None = None) -> None:
    _report(job, page, PageReport.Outcome.UNCHANGED, reason, http_status=http_status)


def page_remove(*, job: CrawlJob | None, page: Page, reason: str) -> None:
    """A page that is gone: its points leave the store, then its row and chunks."""
    point_ids = [str(pid) for pid in page.chunks.filter(uploaded_at__isnull=False).values_list("point_id", flat=True)]
    if point_ids:
        points_delete_by_ids(collection=_collection(page.project), point_ids=point_ids)
    if job is not None:
        _report(job, page, PageReport.Outcome.REMOVED, reason, http_status=page.http_status)
    logger.info("page removed: %s", reason, extra=_log(page.project, url=page.url))
    page.delete()


# ------------------------------------------------------------------------------------------------ phases


def _page_for(project: Project, source: Source, url: str, job: CrawlJob, *, lastmod: str = "") -> Page:
    """The page of a discovered URL, made ready for this job: unknown and failed pages are fetched in full,
    searchable ones conditionally, and one whose sitemap `lastmod` did not move is not fetched at all."""
    page, created = Page.objects.get_or_create(
        project=project, url_hash=url_hash(url), defaults={"url": url, "source": source, "job": job}
    )
    if created or page.job_id == job.pk:  # new, or already prepared by this job before it was interrupted
        if lastmod:
            Page.objects.filter(pk=page.pk).update(sitemap_lastmod=lastmod)
        return page
    updates: dict[str, object] = {"job": job, "error": ""}
    if page.status == Page.Status.FAILED or not _is_live(page):
        page.chunks.all().delete()  # leftovers of an unfinished run: never searchable, done again
        updates.update(
            status=Page.Status.PENDING, raw=None, raw_hash="", content_hash="", etag="", last_modified="",
            fetched_at=None, extracted_at=None, chunked_at=None, embedded_at=None, uploaded_at=None,
        )  # fmt: skip
    elif not job.recrawl and lastmod and lastmod == page.sitemap_lastmod:
        _unchanged(job, page, f"sitemap lastmod {lastmod} unchanged")
    else:
        updates["fetched_at"] = None  # fetched again, conditionally
    if lastmod:
        updates["sitemap_lastmod"] = lastmod
    Page.objects.filter(pk=page.pk).update(**updates)
    return page


def page_reset(*, page: Page) -> None:
    """Forget a page's phase outputs so that the next crawl fetches it again."""
    Page.objects.filter(pk=page.pk).update(
        status=Page.Status.PENDING, raw=None, fetched_at=None, extracted_at=None, chunked_at=None,
        embedded_at=None, uploaded_at=None, error="",
    )  # fmt: skip


def _source_failed(job: CrawlJob, source: Source, reason: str) -> None:
    Source.objects.filter(pk=source.pk).update(last_error=reason[:2000])
    job.error = "\n".join(line for line in (job.error, reason) if line)[:4000]
    logger.warning("crawl source failed: %s", reason, extra=_log(job.project, url=source.url))


def phase_discover(job: CrawlJob) -> None:
    project = job.project
    job.error = ""
    listed: dict[int, set[str]] = {}  # sitemap source -> the URLs it lists now
    sources = list(job.sources.all())
    Source.objects.filter(pk__in=[s.pk for s in sources]).update(last_error="")
    with http_client() as client:
        for source in sources:
            if source.kind == Source.Kind.URL:
                _page_for(project, source, source.url, job)
            elif source.kind == Source.Kind.SITEMAP:
                try:
                    entries = sitemap_entries(source.url, client=client)
                except FetchError as exc:
                    _source_failed(job, source, f"sitemap {source.url}: {exc}")
                    continue
                if not entries:
                    _source_failed(job, source, f"sitemap {source.url}: lists no pages")
                    continue
                for entry in entries:
                    _page_for(project, source, entry.url, job, lastmod=entry.lastmod)
                listed[source.pk] = {entry.url for entry in entries}
            else:
                _file_page(job, source)
    # Pages a sitemap no longer lists go, unless another source of this job asked for them.
    for source_id, urls in listed.items():
        for page in Page.objects.filter(project=project, source_id=source_id).exclude(job=job).exclude(url__in=urls):
            page_remove(job=job, page=page, reason="gone from the sitemap")
    job.total_pages = job.pages.count() + job.reports.filter(outcome=PageReport.Outcome.REMOVED).count()
    job.save(update_fields=["total_pages", "error"])


def _file_page(job: CrawlJob, source: Source) -> None:
    page = _page_for(job.project, source, f"file:{source.title}", job)
    page.refresh_from_db()
    if page.fetched_at is not None:
        return
    source.file.open("rb")
    with source.file:
        data = source.file.read()
    content_type = mimetypes.guess_type(source.title)[0] or ""
    _fetched(job, page, FetchedPage(url=page.url, http_status=200, content_type=content_type, data=data))


def _download(client: httpx.Client, url: str, etag: str, last_modified: str) -> FetchedPage | FetchError:
    """Network only (runs on a fetch thread); the crawl's own thread writes the results."""
    try:
        return fetch_url(url, client=client, etag=etag, last_modified=last_modified)
    except FetchError as exc:
        return exc


def _job_pages(job: CrawlJob) -> QuerySet[Page]:
    return job.pages.exclude(status=Page.Status.FAILED)


def phase_fetch(job: CrawlJob, *, workers: int = FETCH_WORKERS) -> None:
    pending = list(_job_pages(job).filter(fetched_at__isnull=True).defer("raw", "text"))
    # One client (thread-safe, its connections kept alive) for the whole phase: a re-crawl is mostly 304s,
    # where a new client and connection per page would cost more than the answer.
    with http_client() as client, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        futures = {
            pool.submit(
                _download, client, page.url, *(("", "") if job.recrawl else (page.etag, page.last_modified))
            ): page
            for page in pending
        }
        for future in as_completed(futures):
            page, outcome = futures[future], future.result()
            if isinstance(outcome, FetchError):
                _fetch_failed(job, page, outcome)
            elif outcome.not_modified:
                Page.objects.filter(pk=page.pk).update(fetched_at=timezone.now(), gone_count=0, error="")
                _unchanged(job, page, "304 Not Modified", http_status=304)
            else:
                _fetched(job, page, outcome)
            answered_304 = isinstance(outcome, FetchedPage) and outcome.not_modified
            CrawlJob.objects.filter(pk=job.pk).update(
                heartbeat_at=timezone.now(), not_modified=F("not_modified") + int(answered_304)
            )


def _fetch_failed(job: CrawlJob, page: Page, error: FetchError) -> None:
    gone_count = page.gone_count + 1 if error.gone else 0
    if not _is_live(page):
        Page.objects.filter(pk=page.pk).update(gone_count=gone_count, http_status=error.http_status)
        _fail(page, job, str(error), http_status=error.http_status)
    elif error.gone and gone_count >= GONE_AFTER:
        page.http_status = error.http_status
        page_remove(job=job, page=page, reason=f"{error} {GONE_AFTER} crawls in a row")
    else:
        page.http_status = error.http_status
        reason = f"{error} (removed if it answers so again)" if error.gone else str(error)
        _fail_keeping_live(
            page, job, reason, fetched_at=timezone.now(), gone_count=gone_count, http_status=error.http_status,
            sitemap_lastmod="",
        )  # fmt: skip


def _fetched(job: CrawlJob, page: Page, fetched: FetchedPage) -> None:
    """A full answer: unchanged if its bytes are those of the searchable version, else extracted next."""
    raw_hash = hashlib.sha256(fetched.data).hexdigest()
    common = {"http_status": fetched.http_status, "etag": fetched.etag[:500], "gone_count": 0, "error": "",
              "last_modified": fetched.last_modified[:100], "fetched_at": timezone.now()}  # fmt: skip
    if not job.recrawl and raw_hash == page.raw_hash and _is_live(page):
        Page.objects.filter(pk=page.pk).update(**common)
        _unchanged(job, page, "same content", http_status=fetched.http_status)
        return
    Page.objects.filter(pk=page.pk).update(
        **common, raw=fetched.data, raw_hash=raw_hash, content_type=fetched.content_type,
        status=Page.Status.FETCHED, extracted_at=None,
    )  # fmt: skip


def phase_extract(job: CrawlJob) -> None:
    for page in _job_pages(job).filter(fetched_at__isnull=False, extracted_at__isnull=True):
        live = _is_live(page)
        try:
            document = extract_document(data=bytes(page.raw or b""), content_type=page.content_type, url=page.url)
        except ExtractionError as exc:
            if live:  # forget the validators: the next crawl fetches it in full again
                _fail_keeping_live(page, job, str(exc), extracted_at=timezone.now(), etag="", last_modified="",
                                   raw_hash="")  # fmt: skip
            else:
                _fail(page, job, str(exc), http_status=page.http_status)
            continue
        content_hash = hashlib.sha256(f"{document.title}\0{document.text}".encode()).hexdigest()
        if live and not job.recrawl and content_hash == page.content_hash:
            Page.objects.filter(pk=page.pk).update(extracted_at=timezone.now(), status=Page.Status.UPLOADED)
            _unchanged(job, page, "same text", http_status=page.http_status)
            continue
        Page.objects.filter(pk=page.pk).update(
            title=document.title[:500], text=document.text, content_hash=content_hash, version=F("version") + 1,
            status=Page.Status.EXTRACTED, extracted_at=timezone.now(), chunked_at=None, embedded_at=None,
            uploaded_at=None,
        )  # fmt: skip


def phase_chunk(job: CrawlJob) -> None:
    """New chunks for each changed page, under its new version; the searchable ones stay until the swap."""
    project = job.project
    for page in _job_pages(job).filter(extracted_at__isnull=False, chunked_at__isnull=True).defer("raw"):
        if job.semantic_chunking:
            chunks = chunk_semantic(page.text, title=page.title, project=project)
        else:
            chunks = chunk_simple(page.text, title=page.title)
        with transaction.atomic():
            page.chunks.filter(uploaded_at__isnull=True).delete()  # what an interrupted run left unfinished
            ChunkRow.objects.bulk_create(
                ChunkRow(project=project, page=page, version=page.version, index=i, topic=c.topic[:300], text=c.text)
                for i, c in enumerate(chunks)
            )
            Page.objects.filter(pk=page.pk).update(
                status=Page.Status.CHUNKED, chunked_at=timezone.now(), embedded_at=None, uploaded_at=None
            )


def embedding_input(chunk: ChunkRow) -> str:
    """The topic is prepended so that the vector carries what the chunk is about."""
    return f"Topic: {chunk.topic}\n\n{chunk.text}" if chunk.topic else chunk.text


def phase_embed(job: CrawlJob) -> None:
    """Embed what has no vector of the current model: new and changed pages' chunks only."""
    project, model = job.project, embedding_model_id()
    pages = _job_pages(job).filter(chunked_at__isnull=False)
    stale = ChunkRow.objects.filter(page__in=pages).exclude(embedding_model=model).order_by("pk")
    context = CallContext(purpose="crawl_embed", project_id=project.pk)
    while batch := list(stale[:EMBED_BATCH]):
        result = embed_texts(
            [embedding_input(chunk) for chunk in batch],
            kind="document",
            adapter=project.embedding_adapter,
            context=context,
        )
        for chunk, vector in zip(batch, result.vectors, strict=True):
            chunk.embedding, chunk.embedding_model, chunk.uploaded_at = vector, result.model, None
        ChunkRow.objects.bulk_update(batch, ["embedding", "embedding_model", "uploaded_at"])
        CrawlJob.objects.filter(pk=job.pk).update(
            embedding_calls=F("embedding_calls") + 1, chunks_embedded=F("chunks_embedded") + len(batch),
            embedding_tokens=F("embedding_tokens") + result.usage.input_tokens,
            embedding_cost_usd=F("embedding_cost_usd") + Decimal(str(result.cost_usd)), heartbeat_at=timezone.now(),
        )  # fmt: skip
    pages.filter(embedded_at__isnull=True).update(status=Page.Status.EMBEDDED, embedded_at=timezone.now())


def _collection(project: Project) -> str:
    return collection_ensure(project_id=project.pk, model_id=embedding_model_id(), dim=embedding_dim())


def _chunk_terms(chunk: ChunkRow, language: str) -> list[str]:
    return analyze(f"{chunk.topic}\n{chunk.text}", language)


def phase_upload(job: CrawlJob) -> None:
    """Refit BM25 once over the corpus as it will be, then add new pages and swap changed ones.

    A changed page's new chunks and the deletion of its old ones go to the store in one request
    (`points_replace`), so a search finds either version of the page, never both and never neither.
    """
    project, model = job.project, embedding_model_id()
    collection = _collection(project)
    pending = ChunkRow.objects.filter(project=project, embedding_model=model, uploaded_at__isnull=True).exists()
    if not pending and not job.reports.filter(outcome=PageReport.Outcome.REMOVED).exists():
        return  # nothing added, changed or removed: the corpus and its BM25 statistics stay as they are
    corpus = list(ChunkRow.objects.filter(project=project, embedding_model=model).select_related("page"))
    newest: dict[int, int] = {}
    for chunk in corpus:
        newest[chunk.page_id] = max(newest.get(chunk.page_id, 0), chunk.version)
    current = [chunk for chunk in corpus if chunk.version == newest[chunk.page_id]]
    superseded: dict[int, list[ChunkRow]] = defaultdict(list)
    for chunk in corpus:
        if chunk.version < newest[chunk.page_id]:
            superseded[chunk.page_id].append(chunk)
    terms = {chunk.pk: _chunk_terms(chunk, project.language) for chunk in current}
    previous = bm25_stats_load(project=project)
    stats = bm25_fit(list(terms.values()), language=project.language, previous=previous)
    bm25_stats_save(project=project, stats=stats)

    fresh: dict[int, list[ChunkRow]] = defaultdict(list)
    for chunk in current:
        if chunk.uploaded_at is None:
            fresh[chunk.page_id].append(chunk)
    added = [page_id for page_id in fresh if not any(c.uploaded_at for c in superseded.get(page_id, []))]
    for start in range(0, len(added), UPLOAD_BATCH):
        batch = [chunk for page_id in added[start : start + UPLOAD_BATCH] for chunk in fresh[page_id]]
        points_upsert(collection=collection, points=[_point(chunk, terms[chunk.pk], stats) for chunk in batch])
        _uploaded(job, batch, superseded)
    for page_id in fresh.keys() - set(added):
        new, old = fresh[page_id], superseded[page_id]
        points_replace(
            collection=collection, points=[_point(chunk, terms[chunk.pk], stats) for chunk in new],
            delete_ids=[str(chunk.point_id) for chunk in old if chunk.uploaded_at is not None],
        )  # fmt: skip
        _uploaded(job, new, superseded)
    # Corpus statistics moved (new documents change the average length): older points get new BM25 values.
    old = [chunk for chunk in current if chunk.uploaded_at is not None and chunk.page_id not in fresh]
    if old and previous is not None and previous.avg_doc_len != stats.avg_doc_len:
        points_update_sparse(
            collection=collection,
            vectors={str(chunk.point_id): bm25_document_vector(terms[chunk.pk], stats) for chunk in old},
        )


def _uploaded(job: CrawlJob, chunks: list[ChunkRow], superseded: dict[int, list[ChunkRow]]) -> None:
    """After the store took these chunks: rows marked, old versions' rows gone, report lines written."""
    page_ids = {chunk.page_id for chunk in chunks}
    now = timezone.now()
    with transaction.atomic():
        ChunkRow.objects.filter(pk__in=[chunk.pk for chunk in chunks]).update(uploaded_at=now)
        changed = {page_id for page_id in page_ids if any(c.uploaded_at for c in superseded.get(page_id, []))}
        ChunkRow.objects.filter(pk__in=[c.pk for page_id in page_ids for c in superseded.get(page_id, [])]).delete()
        Page.objects.filter(pk__in=page_ids).update(status=Page.Status.UPLOADED, uploaded_at=now)
        CrawlJob.objects.filter(pk=job.pk).update(
            chunks_uploaded=F("chunks_uploaded") + len(chunks), heartbeat_at=timezone.now()
        )
    counts = Counter(chunk.page_id for chunk in chunks)
    outcome = {True: PageReport.Outcome.CHANGED, False: PageReport.Outcome.ADDED}
    _reports_write([
        _report_row(job, page, outcome[page.pk in changed], http_status=page.http_status, chunks=counts[page.pk])
        for page in Page.objects.filter(pk__in=page_ids, job=job).defer("raw", "text")
    ])  # fmt: skip


def _point(chunk: ChunkRow, terms: list[str], stats: BM25Stats) -> ChunkPoint:
    return ChunkPoint(
        point_id=str(chunk.point_id),
        dense=chunk.embedding,
        sparse=bm25_document_vector(terms, stats),
        payload={"project_id": chunk.project_id, "chunk_id": chunk.pk, "page_id": chunk.page_id,
                 "page_version": chunk.version, "url": chunk.page.url, "topic": chunk.topic, "text": chunk.text},
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
    """Run (or resume) a crawl job to its end; each phase skips what earlier runs finished.

    One run at a time: a second delivery of the job's task (a broker redelivery, a resume racing the run)
    finds the job claimed and leaves it.
    """
    with session_lock(CRAWL_LOCK_NAMESPACE, job.pk) as claimed:
        if not claimed:
            logger.info("crawl job %s is running elsewhere; this run leaves it", job.pk,
                        extra=_log(job.project, job_id=job.pk))  # fmt: skip
            return job
        job.refresh_from_db()
        if job.is_finished:
            return job
        return _crawl_job_run_claimed(job)


def _crawl_job_run_claimed(job: CrawlJob) -> CrawlJob:
    CrawlJob.objects.filter(pk=job.pk).update(
        status=CrawlJob.Status.RUNNING, started_at=job.started_at or timezone.now(), heartbeat_at=timezone.now()
    )
    try:
        for phase, run in PHASES:
            CrawlJob.objects.filter(pk=job.pk).update(phase=phase, heartbeat_at=timezone.now())
            job.refresh_from_db()
            run(job)
            crawl_job_count(job=job)
    except Exception as exc:  # any failure ends the job visibly; finished work stays for a resume
        logger.exception("crawl failed", extra=_log(job.project, job_id=job.pk))
        with transaction.atomic():  # a job seen finished has its sources accounted
            CrawlJob.objects.filter(pk=job.pk).update(
                status=CrawlJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
            )
            job.refresh_from_db()
            _sources_account(job)
    else:
        job.refresh_from_db()
        with transaction.atomic():
            CrawlJob.objects.filter(pk=job.pk).update(
                status=crawl_job_verdict(job=job), phase=CrawlJob.Phase.DONE, finished_at=timezone.now()
            )
            job.refresh_from_db()
            _sources_account(job)
    logger.info(
        "crawl job %s %s: %s added, %s changed, %s unchanged, %s removed, %s failed, %s embedding calls",
        job.pk, job.status, job.pages_added, job.pages_changed, job.pages_unchanged, job.pages_removed,
        job.pages_failed, job.embedding_calls, extra=_log(job.project, job_id=job.pk),
    )  # fmt: skip
    return job


def crawl_job_count(*, job: CrawlJob) -> None:
    """The job's page counts from its report lines."""
    rows = job.reports.order_by().values_list("outcome").annotate(n=Count("pk")).values_list("outcome", "n")
    counts: Counter[str] = Counter(dict(rows))
    outcome = PageReport.Outcome
    CrawlJob.objects.filter(pk=job.pk).update(
        pages_added=counts[outcome.ADDED], pages_changed=counts[outcome.CHANGED],
        pages_unchanged=counts[outcome.UNCHANGED], pages_removed=counts[outcome.REMOVED],
        pages_failed=counts[outcome.FAILED], pages_done=sum(counts.values()) - counts[outcome.FAILED],
    )  # fmt: skip


def crawl_job_verdict(*, job: CrawlJob) -> str:
    """`done` when every page and source went well, `failed` when nothing did, `partial` in between."""
    succeeded = job.pages_done
    if job.pages_failed and not succeeded:
        return CrawlJob.Status.FAILED
    if job.total_pages == 0 and job.error:
        return CrawlJob.Status.FAILED
    if job.pages_failed or job.error:
        return CrawlJob.Status.PARTIAL
    return CrawlJob.Status.DONE


def _sources_account(job: CrawlJob) -> None:
    """Each source of the job: refreshed now, or one more failed run in a row."""
    now = timezone.now()
    for source in job.sources.all():
        outcomes = set(job.reports.filter(source=source).values_list("outcome", flat=True))
        failed = bool(source.last_error) or job.status == CrawlJob.Status.FAILED or outcomes == {"failed"}
        if failed:
            Source.objects.filter(pk=source.pk).update(failed_runs=F("failed_runs") + 1)
        else:
            Source.objects.filter(pk=source.pk).update(failed_runs=0, last_refreshed_at=now)


def knowledge_delete_urls(*, project: Project, urls: list[str]) -> int:
    """Remove pages and exactly their chunks (database and Qdrant); returns how many pages went."""
    pages = list(Page.objects.filter(project=project, url__in=urls))
    for page in pages:
        page_remove(job=None, page=page, reason="deleted by an operator")
    return len(pages)
