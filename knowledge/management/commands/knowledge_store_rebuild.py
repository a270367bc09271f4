"""`manage.py knowledge_store_rebuild [SLUG...]`: re-create vector collections from the chunks in PostgreSQL.

With no slug, every project (and, for the embedded store, the upgrade marker: see knowledge.store_rebuild).
The embedded engine's HNSW indexes are built too (searches stay exact until then: see knowledge.edge_store).
The embedded store belongs to the worker: stop it first (this command refuses while a worker owns the path).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from knowledge.qdrant_store import qdrant_close
from knowledge.store_owner import StoreOwnedElsewhere, store_is_embedded, store_owner_claim, store_owner_release
from knowledge.store_rebuild import knowledge_store_rebuild, knowledge_store_rebuild_all, store_upgrade
from tenants.selectors import ProjectNotFound, project_get_by_slug


class Command(BaseCommand):
    help = (
        "Rebuild the vector store's collections from the chunks stored in the database (every project, or the "
        "given slugs). With the embedded store (QDRANT_URL unset), stop the worker first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Project slugs (default: every project with chunks).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            projects = [project_get_by_slug(slug=slug) for slug in options["slugs"]]
        except ProjectNotFound as exc:
            raise CommandError(f"no such project: {exc}") from None
        claimed = False
        if store_is_embedded():
            try:
                store_owner_claim()
            except StoreOwnedElsewhere as exc:
                raise CommandError(f"{exc} Stop the worker, run this command, start the worker.") from None
            claimed = True
        try:
            if projects:
                counts = {project.pk: knowledge_store_rebuild(project=project, index=True) for project in projects}
            else:
                counts = store_upgrade(index=True) if store_is_embedded() else self._all()
        finally:
            if claimed:
                qdrant_close()
                store_owner_release()
        for project_id, chunks in counts.items():
            self.stdout.write(f"project {project_id}: {chunks} chunks")
        self.stdout.write(self.style.SUCCESS(f"rebuilt {len(counts)} projects, {sum(counts.values())} chunks"))

    def _all(self) -> dict[int, int]:
        return knowledge_store_rebuild_all(index=True)
