"""`manage.py crawl S --urls U1,U2 | --sitemap URL | --files PATH... | --all`: crawl on the worker and follow it.

Exit codes: 0 done, 1 bad input (nothing started), 3 partial (some pages failed), 4 failed (no page
succeeded, or the job itself failed), 5 still running when --timeout ran out (the job goes on).
"""

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.models import CrawlJob, PageReport, Source
from knowledge.selectors import crawl_job_summary
from knowledge.services import CrawlInputError, crawl_paths_read, crawl_request
from tenants.selectors import ProjectNotFound, project_get_by_slug

EXIT_PARTIAL = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5


class Command(BaseCommand):
    help = (
        "Start a crawl job on the worker (the same pipeline as the admin action), print its progress and report, "
        "and exit when it ends. Exit codes: 0 done, 1 bad input, 3 partial (some pages failed), 4 failed, "
        "5 still running after --timeout. Ctrl-C stops following and leaves the job running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        sources = parser.add_argument_group("what to crawl (at least one)")
        sources.add_argument("--urls", default="", help="Comma-separated page URLs (http or https).")
        sources.add_argument("--sitemap", default=None, help="A sitemap.xml URL.")
        sources.add_argument("--files", nargs="+", type=Path, default=[], help="Local PDF/DOCX/XLSX/TXT/HTML files.")
        sources.add_argument("--all", action="store_true", help="Every source of the project again.")
        parser.add_argument(
            "--schedule", choices=Source.Schedule.values, default=None,
            help="Re-crawl these sources on this schedule from now on (off, hourly, daily, weekly).",
        )  # fmt: skip
        parser.add_argument("--recrawl", action="store_true", help="Re-embed every page, even unchanged ones.")
        parser.add_argument("--semantic", action="store_true", help="LLM topic boundaries instead of paragraphs.")
        parser.add_argument("--no-follow", action="store_true", help="Start the job and exit.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Stop following after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ProjectNotFound:
            raise CommandError(f"no project with slug {options['slug']}") from None
        urls = [url.strip() for url in options["urls"].split(",") if url.strip()]
        if not (urls or options["sitemap"] or options["files"] or options["all"]):
            raise CommandError("nothing to crawl: give --urls, --sitemap, --files or --all")
        try:
            files = crawl_paths_read(options["files"])
            job = crawl_request(
                project=project, urls=urls, sitemap=options["sitemap"], files=files, all_sources=options["all"],
                recrawl=options["recrawl"], semantic_chunking=options["semantic"], schedule=options["schedule"],
            )  # fmt: skip
        except CrawlInputError as exc:
            raise CommandError("\n".join(exc.problems)) from None
        self.stdout.write(f"crawl job #{job.pk} started for {project.slug}")
        if options["no_follow"]:
            return
        try:
            self._follow(job, options["timeout"])
        except KeyboardInterrupt:
            self.stdout.write(f"\nstopped following; job #{job.pk} keeps running on the worker")

    def _follow(self, job: CrawlJob, timeout: float) -> None:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            job.refresh_from_db()
            line = f"[{job.status}] {job.get_phase_display()}: {job.progress}, {job.chunks_uploaded} chunks uploaded"
            if line != last:
                self.stdout.write(line)
                last = line
            if job.is_finished:
                break
            time.sleep(0.5)
        else:
            raise CommandError(
                f"job #{job.pk} still running after {timeout:.0f} s (it goes on)", returncode=EXIT_TIMEOUT
            )
        self._report(job)

    def _report(self, job: CrawlJob) -> None:
        self.stdout.write(f"pages: {crawl_job_summary(job)}")
        self.stdout.write(
            f"embedding: {job.embedding_calls} call(s), {job.chunks_embedded} chunk(s), ${job.embedding_cost_usd:.4f}; "
            f"{job.not_modified} page(s) answered 304 Not Modified; took {job.duration}"
        )
        for report in job.reports.filter(outcome=PageReport.Outcome.REMOVED):
            self.stdout.write(f"  removed: {report.url}: {report.reason}")
        for report in job.reports.filter(outcome=PageReport.Outcome.FAILED):
            self.stdout.write(f"  failed: {report.url}: {report.reason}")
        if job.status == CrawlJob.Status.FAILED:
            raise CommandError(
                f"crawl job #{job.pk} failed: {job.error or 'no page succeeded'}", returncode=EXIT_FAILED
            )
        if job.status == CrawlJob.Status.PARTIAL:
            raise CommandError(
                f"crawl job #{job.pk} partly failed: {job.pages_failed} page(s) failed"
                + (f"; {job.error}" if job.error else ""),
                returncode=EXIT_PARTIAL,
            )
        self.stdout.write(self.style.SUCCESS(f"crawl job #{job.pk} done"))
