"""`manage.py matching_reembed [SLUG ...] [--batch N]`: re-embed profiles after an embedding model change.

Re-embeds, with the configured EMBEDDING_MODEL / EMBEDDING_DIM, every profile whose vector is missing or of
another model, size or summary, in batches, printing progress. Without slugs: every matching project.
Profiles not yet re-embedded are not matched meanwhile (the loop compares only vectors of the current model).
Exit codes: 0 done, 1 bad input, 4 the embedder failed (the reason is printed; finished batches are kept).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.llm.embeddings import embedding_dim, embedding_model_id
from bots.llm.slots import InvalidModelId
from matching.reembed import BATCH_SIZE, profiles_reembed_stale
from matching.vectors import EMBEDDING_FAILURES
from tenants.models import Project
from tenants.selectors import ProjectNotFound, project_get_by_slug

EXIT_FAILED = 4


class Command(BaseCommand):
    help = (
        "Re-embed matching profiles whose vectors are missing or of another embedding model or size, with "
        "progress. Without slugs: every matching project. Exit 4 when the embedder fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Projects to re-embed (default: every matching project).")
        parser.add_argument("--batch", type=int, default=BATCH_SIZE, help="Profiles per embedding call.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        projects = self._projects(options["slugs"])
        try:
            self.stdout.write(f"embedding model {embedding_model_id()} ({embedding_dim()} dimensions)")
        except InvalidModelId as exc:
            raise CommandError(str(exc)) from exc
        for project in projects:

            def progress(done: int, total: int, slug: str = project.slug) -> None:
                self.stdout.write(f"{slug}: {done}/{total} profiles re-embedded")

            try:
                result = profiles_reembed_stale(project=project, batch_size=options["batch"], progress=progress)
            except EMBEDDING_FAILURES as exc:
                self.stderr.write(f"{project.slug}: embedding failed: {type(exc).__name__}: {exc}")
                raise SystemExit(EXIT_FAILED) from exc
            if not result.total:
                self.stdout.write(f"{project.slug}: every profile is embedded with this model")
        self.stdout.write(self.style.SUCCESS("done"))

    @staticmethod
    def _projects(slugs: list[str]) -> list[Project]:
        if not slugs:
            return list(Project.objects.alive().filter(kind=Project.Kind.MATCHING).order_by("slug"))
        projects = []
        for slug in slugs:
            try:
                project = project_get_by_slug(slug=slug)
            except ProjectNotFound:
                raise CommandError(f"no project with slug {slug}") from None
            if project.kind != Project.Kind.MATCHING:
                raise CommandError(f"{slug} is not a matching project")
            projects.append(project)
        return projects
