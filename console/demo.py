"""The demo projects: one per kind, with prompts that show what a project holds."""

from pathlib import Path

from knowledge.models import CrawlJob
from knowledge.services import crawl_request
from tenants.models import Project
from tenants.services import project_create

DEMO_SITE = Path(__file__).resolve().parent.parent / "knowledge" / "demo_site"

# A syntactically valid placeholder; Telegram rejects it until an operator sets a real token.
DEMO_TOKEN = "1000000000:demo-token-replace-me-with-botfather-token"

DEMO_PROJECTS = [
    {
        "slug": "demo-sales",
        "kind": Project.Kind.SALES,
        "name": "Demo: Northwind Cleaning (sales)",
        "prompt": (
            "You are the consultant of Northwind Cleaning, a home and office cleaning company. "
            "Answer from the knowledge base, find out what the customer needs, and collect a name and a "
            "phone number so that a manager can call back."
        ),
        "start_reply": "Hello! I am the Northwind Cleaning assistant. What would you like cleaned?",
    },
    {
        "slug": "demo-matching",
        "kind": Project.Kind.MATCHING,
        "name": "Demo: IT matchmaker",
        "prompt": "You match IT job seekers with employers and contractors. Be brief and friendly.",
        "start_reply": "Hi! Tell me about yourself: are you looking for work or for people?",
    },
]


def demo_site_files() -> list[tuple[str, bytes]]:
    """The bundled website of the demo business (English and Russian pages)."""
    return [(str(path.relative_to(DEMO_SITE)), path.read_bytes()) for path in sorted(DEMO_SITE.glob("*/*.html"))]


def demo_knowledge_ensure(project: Project) -> CrawlJob | None:
    """Crawl the bundled pages into the demo sales project once (the worker runs the job)."""
    if project.crawl_jobs.exists():
        return None
    return crawl_request(project=project, files=demo_site_files())


def demo_ensure() -> list[tuple[Project, bool]]:
    results = []
    for spec in DEMO_PROJECTS:
        project = Project.objects.filter(slug=spec["slug"]).first()
        created = project is None
        if project is None:
            project = project_create(token=DEMO_TOKEN, **spec)
        if project.kind == Project.Kind.SALES:
            demo_knowledge_ensure(project)
        results.append((project, created))
    return results
