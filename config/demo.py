"""The demo projects: one per kind, with prompts that show what a project holds."""

from tenants.models import Project
from tenants.services import project_create

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


def demo_ensure() -> list[tuple[Project, bool]]:
    results = []
    for spec in DEMO_PROJECTS:
        existing = Project.objects.filter(slug=spec["slug"]).first()
        if existing is not None:
            results.append((existing, False))
            continue
        results.append((project_create(token=DEMO_TOKEN, **spec), True))
    return results
