"""Starting crawls: one validation of crawl input and one `crawl_request` behind every entry point.

The `crawl` command, the knowledge admin, the project console, the demo and the schedule sweep all call
`crawl_request`, which refuses bad input at once with one `CrawlInputError` naming every problem, creates
the job with its sources, and enqueues it after commit. Nothing here loads the pipeline (embedding
model, vector store, extractors): a request only writes rows.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from knowledge.formats import SUPPORTED_SUFFIXES
from knowledge.models import SCHEDULE_INTERVALS, CrawlJob, Source
from knowledge.store_owner import store_reachable_here
from tenants.models import Project

logger = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https")
MAX_FILE_BYTES = 20 * 1024 * 1024
_validate_url = URLValidator(schemes=list(URL_SCHEMES))


class CrawlInputError(ValueError):
    """What was asked cannot be crawled; the message lists every reason, and nothing was created."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class CrawlInput:
    urls: tuple[str, ...] = ()
    sitemap: str | None = None
    files: tuple[tuple[str, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.urls or self.sitemap or self.files)


# --- validation ------------------------------------------------------------------------------------------


def crawl_url_clean(url: str) -> str:
    """A web address to crawl: http(s) with a host; a bare `shop.example/prices` means https."""
    url = url.strip()
    candidate = url if "://" in url else f"https://{url}"
    try:
        _validate_url(candidate)
    except ValidationError:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme and scheme not in URL_SCHEMES:
            raise CrawlInputError([f"{url}: only http and https addresses can be crawled"]) from None
        raise CrawlInputError([f"{url}: not a web address"]) from None
    return candidate


def crawl_file_check(*, name: str, size: int) -> None:
    suffix = PurePosixPath(name.lower()).suffix
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(s.lstrip(".").upper() for s in SUPPORTED_SUFFIXES)
        raise CrawlInputError([f"{name}: unsupported file type {suffix or '(none)'}; supported: {supported}"])
    if size > MAX_FILE_BYTES:
        raise CrawlInputError([f"{name}: larger than {MAX_FILE_BYTES // 1024 // 1024} MB"])


def crawl_paths_read(paths: Iterable[Path]) -> list[tuple[str, bytes]]:
    """Local files for the `crawl` command: each checked before it is read, missing ones refused."""
    files, problems = [], []
    for path in paths:
        try:
            crawl_file_check(name=path.name, size=path.stat().st_size)
            files.append((path.name, path.read_bytes()))
        except CrawlInputError as exc:
            problems += exc.problems
        except OSError as exc:
            problems.append(f"cannot read {path}: {exc.strerror or exc}")
    if problems:
        raise CrawlInputError(problems)
    return files


def crawl_input_clean(
    *, urls: Iterable[str] = (), sitemap: str | None = None, files: Iterable[tuple[str, bytes]] = ()
) -> CrawlInput:
    """Every problem of the input at once, or the cleaned input."""
    problems: list[str] = []
    clean_urls: list[str] = []
    for url in urls:
        if not url.strip():
            continue
        try:
            clean_urls.append(crawl_url_clean(url))
        except CrawlInputError as exc:
            problems += exc.problems
    clean_sitemap = None
    if sitemap and sitemap.strip():
        try:
            clean_sitemap = crawl_url_clean(sitemap)
        except CrawlInputError as exc:
            problems += [f"sitemap {problem}" for problem in exc.problems]
    clean_files = []
    for name, data in files:
        try:
            crawl_file_check(name=name, size=len(data))
            clean_files.append((name, data))
        except CrawlInputError as exc:
            problems += exc.problems
    if problems:
        raise CrawlInputError(problems)
    return CrawlInput(urls=tuple(dict.fromkeys(clean_urls)), sitemap=clean_sitemap, files=tuple(clean_files))


def crawl_schedule_clean(schedule: str) -> str:
    if schedule not in Source.Schedule.values:
        raise CrawlInputError([f"schedule {schedule!r}: one of {', '.join(Source.Schedule.values)}"])
    return schedule


# --- requests --------------------------------------------------------------------------------------------


def crawl_request(
    *,
    project: Project,
    urls: Iterable[str] = (),
    sitemap: str | None = None,
    files: Iterable[tuple[str, bytes]] = (),
    sources: Iterable[Source] = (),
    all_sources: bool = False,
    recrawl: bool = False,
    semantic_chunking: bool = False,
    schedule: str | None = None,
) -> CrawlJob:
    """Validate, create the job and its sources, and enqueue it on the worker after commit.

    `all_sources` crawls every source of the project again; `recrawl` re-embeds every page even when it is
    unchanged; `schedule` sets the re-crawl schedule of the sources this job crawls.
    """
    if project.kind != Project.Kind.SALES:
        raise CrawlInputError([f"{project.slug}: only sales projects have a knowledge base"])
    if project.is_deleted:
        raise CrawlInputError([f"{project.slug}: the project is deleted"])
    cleaned = crawl_input_clean(urls=urls, sitemap=sitemap, files=files)
    chosen = [source for source in sources if source.project_id == project.pk]
    if all_sources:
        chosen = list(project.knowledge_sources.all())
        if not chosen and not cleaned:
            raise CrawlInputError([f"{project.slug}: no sources yet; give URLs, a sitemap or files"])
    elif not cleaned and not chosen:
        raise CrawlInputError(["nothing to crawl: give URLs, a sitemap or files"])
    if schedule is not None:
        crawl_schedule_clean(schedule)
    _refuse_busy(project, chosen, cleaned)
    job = crawl_job_create(
        project=project, urls=cleaned.urls, sitemap=cleaned.sitemap, files=cleaned.files, sources=chosen,
        recrawl=recrawl, semantic_chunking=semantic_chunking, schedule=schedule,
    )  # fmt: skip
    _enqueue(job)
    logger.info("crawl job %s requested", job.pk, extra={"project_id": project.pk, "job_id": job.pk})
    return job


def crawl_job_create(
    *,
    project: Project,
    urls: Iterable[str] = (),
    sitemap: str | None = None,
    files: Iterable[tuple[str, bytes]] = (),
    sources: Iterable[Source] = (),
    recrawl: bool = False,
    semantic_chunking: bool = False,
    schedule: str | None = None,
    scheduled: bool = False,
) -> CrawlJob:
    """The job row and its sources (input already cleaned by `crawl_input_clean`).

    A URL or sitemap asked for again reuses its source; a file of the same name replaces the file's content.
    """
    now = timezone.now()
    with transaction.atomic():
        job = CrawlJob.objects.create(
            project=project, recrawl=recrawl, semantic_chunking=semantic_chunking, scheduled=scheduled
        )
        chosen = [source for source in sources if source.project_id == project.pk]
        for url in urls:
            chosen.append(_source_for_url(project, Source.Kind.URL, url))
        if sitemap:
            chosen.append(_source_for_url(project, Source.Kind.SITEMAP, sitemap))
        for name, data in files:
            # The title keeps relative folders ("en/prices.html"), so same-named files stay distinct pages.
            title = name.lstrip("/")[:300]
            source = Source.objects.filter(project=project, kind=Source.Kind.FILE, title=title).first()
            source = source or Source(project=project, kind=Source.Kind.FILE, title=title)
            source.file.save(Path(name).name, ContentFile(data), save=True)
            chosen.append(source)
        updates: dict[str, object] = {"last_queued_at": now}
        if schedule is not None:
            updates["schedule"] = schedule
        Source.objects.filter(pk__in=[s.pk for s in chosen]).update(**updates)
        job.sources.add(*chosen)
    return job


def _refuse_busy(project: Project, chosen: list[Source], cleaned: CrawlInput) -> None:
    """Two jobs on the same pages would race each other: a source already queued or running is refused."""
    asked = Q(pk__in=[source.pk for source in chosen])
    asked |= Q(kind=Source.Kind.URL, url__in=cleaned.urls)
    if cleaned.sitemap:
        asked |= Q(kind=Source.Kind.SITEMAP, url=cleaned.sitemap)
    active = CrawlJob.objects.filter(project=project, status__in=(CrawlJob.Status.QUEUED, CrawlJob.Status.RUNNING))
    busy = Source.objects.filter(asked, project=project, jobs__in=active).values_list("url", "title", "jobs")
    problems = [f"{url or title}: already in crawl job #{job_id}, still running" for url, title, job_id in busy]
    if problems:
        raise CrawlInputError(sorted(set(problems)))


def _source_for_url(project: Project, kind: str, url: str) -> Source:
    source = Source.objects.filter(project=project, kind=kind, url=url).first()
    return source or Source.objects.create(project=project, kind=kind, url=url)


def _enqueue(job: CrawlJob) -> None:
    from knowledge.tasks import crawl_job_run_task

    transaction.on_commit(lambda: crawl_job_run_task.delay(job.pk))


# --- schedules -------------------------------------------------------------------------------------------


def source_schedule_set(*, project: Project, schedule: str, sources: Iterable[Source] | None = None) -> int:
    """Set the re-crawl schedule of the given sources (default: every source of the project)."""
    crawl_schedule_clean(schedule)
    queryset = project.knowledge_sources.all()
    if sources is not None:
        queryset = queryset.filter(pk__in=[s.pk for s in sources])
    return queryset.update(schedule=schedule)


def _active_source_ids() -> set[int]:
    active = CrawlJob.objects.filter(status__in=(CrawlJob.Status.QUEUED, CrawlJob.Status.RUNNING))
    return set(Source.objects.filter(jobs__in=active).values_list("pk", flat=True))


def crawl_schedules_run(*, now: datetime | None = None) -> list[CrawlJob]:
    """Beat: one incremental crawl per project of its sources whose schedule is due.

    A source is due once its interval has passed since it was last queued (or it never was). A source
    already in a queued or running job is left alone, and the due rows are claimed under a lock (skip
    locked), so two sweeps never start the same work twice.
    """
    now = now or timezone.now()
    jobs = []
    due = Q()
    for schedule, interval in SCHEDULE_INTERVALS.items():
        due |= Q(schedule=schedule) & (Q(last_queued_at__isnull=True) | Q(last_queued_at__lte=now - interval))
    with transaction.atomic():
        candidates = list(
            Source.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(due, project__kind=Project.Kind.SALES, project__deleted_at__isnull=True)
            .select_related("project")
            .order_by("project_id", "pk")
        )
        busy = _active_source_ids()
        by_project: dict[int, list[Source]] = {}
        for source in candidates:
            if source.pk not in busy:
                by_project.setdefault(source.project_id, []).append(source)
        for sources in by_project.values():
            job = crawl_job_create(project=sources[0].project, sources=sources, scheduled=True)
            _enqueue(job)
            jobs.append(job)
            logger.info(
                "scheduled crawl job %s for %d source(s)", job.pk, len(sources),
                extra={"project_id": job.project_id, "job_id": job.pk},
            )  # fmt: skip
    return jobs


# --- removal ---------------------------------------------------------------------------------------------


def knowledge_urls_delete_anywhere(*, project: Project, urls: list[str]) -> int:
    """Remove pages and their chunks here, or through the worker that owns the embedded store."""
    if store_reachable_here():
        # The pipeline loads the store client and the embedding model: only a process that owns the store.
        from knowledge.pipeline import knowledge_delete_urls

        return knowledge_delete_urls(project=project, urls=urls)
    from knowledge.tasks import knowledge_delete_urls_task

    return int(knowledge_delete_urls_task.delay(project.pk, urls).get(timeout=110))
