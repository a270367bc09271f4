"""`manage.py crawl S --urls U1,U2 | --sitemap URL | --files PATH...`: crawl on the worker and follow it."""

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.models import CrawlJob
from knowledge.services import crawl_start
from tenants.selectors import ProjectNotFound, project_get_by_slug


class Command(BaseCommand):
    help = (
        "Start a crawl job on the worker (the same pipeline as the admin action), print its progress and exit "
        "when it ends (non-zero if it failed). Ctrl-C stops following and leaves the job running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        sources = parser.add_argument_group("what to crawl (at least one)")
        sources.add_argument("--urls", default="", help="Comma-separated page URLs.")
        sources.add_argument("--sitemap", default=None, help="A sitemap.xml URL.")
        sources.add_argument("--files", nargs="+", type=Path, default=[], help="Local PDF/DOCX/XLSX/TXT/HTML files.")
        parser.add_argument("--recrawl", action="store_true", help="Fetch again pages crawled before.")
        parser.add_argument("--semantic", action="store_true", help="LLM topic boundaries instead of paragraphs.")
        parser.add_argument("--no-follow", action="store_true", help="Start the job and exit.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Stop following after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ProjectNotFound:
            raise CommandError(f"no project with slug {options['slug']}") from None
        urls = [url.strip() for url in options["urls"].split(",") if url.strip()]
        if not (urls or options["sitemap"] or options["files"]):
            raise CommandError("nothing to crawl: give --urls, --sitemap or --files")
        files = []
        for path in options["files"]:
            try:
                files.append((path.name, path.read_bytes()))
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        job = crawl_start(
            project=project, urls=urls, sitemap=options["sitemap"], files=files, recrawl=options["recrawl"],
            semantic_chunking=options["semantic"],
        )  # fmt: skip
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
            if job.status in (CrawlJob.Status.DONE, CrawlJob.Status.FAILED):
                break
            time.sleep(0.5)
        else:
            raise CommandError(f"job #{job.pk} still running after {timeout:.0f} s (it goes on)")
        for page in job.pages.filter(status="failed"):
            self.stdout.write(f"  failed: {page.url}: {page.error}")
        if job.status == CrawlJob.Status.FAILED:
            raise CommandError(f"crawl job #{job.pk} failed: {job.error}")
        self.stdout.write(self.style.SUCCESS(f"crawl job #{job.pk} done"))
