"""`manage.py knowledge_reembed [SLUG...] [--all]`: embed stored chunks with the current embedding model.

After a change of EMBEDDING_MODEL, EMBEDDING_DIM or OFFLINE_EMBEDDING_MODEL (no page is fetched again), or,
with `--all`, after a project's `embedding_adapter` changed (same model, other text formatting). The
collections are rebuilt from the new vectors. With the embedded store, stop the worker first (or let the
worker do it: a search that finds only another model's chunks queues the same re-embedding there).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots.llm.embeddings import embedding_dim, embedding_model_id
from knowledge.models import Chunk
from knowledge.qdrant_store import qdrant_close
from knowledge.reembed import chunks_to_reembed, knowledge_reembed
from knowledge.store_owner import StoreOwnedElsewhere, store_is_embedded, store_owner_claim, store_owner_release
from tenants.models import Project
from tenants.selectors import ProjectNotFound, project_get_by_slug


class Command(BaseCommand):
    help = "Embed the stored knowledge chunks with the current embedding model and rebuild the collections."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Project slugs (default: every project with chunks).")
        parser.add_argument("--all", action="store_true", help="Every chunk, also those of the current model.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            projects = [project_get_by_slug(slug=slug) for slug in options["slugs"]]
        except ProjectNotFound as exc:
            raise CommandError(f"no such project: {exc}") from None
        if not projects:
            ids = Chunk.objects.values_list("project_id", flat=True).distinct()
            projects = list(Project.objects.filter(pk__in=ids).order_by("pk"))
        claimed = False
        if store_is_embedded():
            try:
                store_owner_claim()
            except StoreOwnedElsewhere as exc:
                raise CommandError(f"{exc} Stop the worker, run this command, start the worker.") from None
            claimed = True
        self.stdout.write(f"embedding model {embedding_model_id()} ({embedding_dim()} dimensions)")
        try:
            total = 0
            for project in projects:
                todo = chunks_to_reembed(project=project, every=options["all"])
                self.stdout.write(f"{project.slug}: {todo} chunks to embed")
                total += knowledge_reembed(project=project, every=options["all"], progress=self._progress(project))
        finally:
            if claimed:
                qdrant_close()
                store_owner_release()
        self.stdout.write(self.style.SUCCESS(f"re-embedded {total} chunks in {len(projects)} projects"))

    def _progress(self, project: Project) -> Any:
        def report(done: int, total: int) -> None:
            self.stdout.write(f"  {project.slug}: {done}/{total}")

        return report
