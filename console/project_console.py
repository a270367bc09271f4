"""Reads of the project console: the assembled system prompt, the knowledge base and its crawl progress."""

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.urls import reverse

from bots.agent import system_prefix
from bots.kinds import toolset_for
from bots.llm.slots import InvalidModelId, resolve_chain
from bots.models import Chat, Turn
from bots.toolsets import ToolContext
from tenants.models import Project


@dataclass(frozen=True)
class SystemPromptPreview:
    platform_part: str  # the engine preamble and the kind's tool instructions (not editable per project)
    project_part: str  # the project's own prompt

    @property
    def full(self) -> str:
        return "\n\n".join(part for part in (self.platform_part, self.project_part) if part)


def project_system_prompt(*, project: Project) -> SystemPromptPreview:
    """The stable system prefix the model receives, split where the operator's own prompt starts."""

    toolset = toolset_for(project)
    # The prefix depends only on the project and its kind; an unsaved chat and turn stand in for a real one.
    context = ToolContext(project=project, chat=Chat(project=project), turn=Turn(project=project))
    prompt = project.prompt.strip()
    full = system_prefix(context=context, toolset=toolset)
    platform = full[: len(full) - len(prompt)].rstrip() if prompt and full.endswith(prompt) else full
    return SystemPromptPreview(platform_part=platform, project_part=prompt)


def crawl_progress(*, project: Project, limit: int = 10) -> list[dict[str, Any]]:
    """The project's latest crawl jobs as the console shows (and polls) them."""
    jobs = project.crawl_jobs.order_by("-created_at")[:limit]
    return [
        {
            "id": job.pk,
            "status": job.status,
            "status_display": job.get_status_display(),
            "phase": job.get_phase_display(),
            "total_pages": job.total_pages,
            "pages_done": job.pages_done,
            "pages_failed": job.pages_failed,
            "chunks_uploaded": job.chunks_uploaded,
            "percent": round(100 * (job.pages_done + job.pages_failed) / job.total_pages) if job.total_pages else 0,
            "error": job.error,
            "created_at": job.created_at.isoformat(),
            "finished": job.is_finished,
        }
        for job in jobs
    ]


@dataclass(frozen=True)
class SourcesSummary:
    count: int
    labels: list[str]  # the first few, as an operator knows them (the URL, or the uploaded file's name)
    more: int


def knowledge_sources_summary(*, project: Project, shown: int = 5) -> SourcesSummary:
    sources = project.knowledge_sources.all()
    count = sources.count()
    labels = [
        source.url or source.title or (PurePosixPath(source.file.name).name if source.file else f"source {source.pk}")
        for source in sources[:shown]
    ]
    return SourcesSummary(count=count, labels=labels, more=max(count - len(labels), 0))


def project_model_label(*, project: Project) -> str:
    try:
        return ", ".join(ref.id for ref in resolve_chain(project=project, slot="toolcaller"))
    except InvalidModelId:
        return "invalid model setting"


def project_console_links(*, project: Project) -> list[dict[str, str]]:
    """The project's other pages, shown as the console's tabs."""
    scoped = f"?project__id__exact={project.pk}"
    other = ("Leads", "leads_lead", "contact_phone") if project.kind == Project.Kind.SALES else (
        "Matches", "matching_match", "handshake")  # fmt: skip
    dashboard = reverse("admin:tenants_project_dashboard", args=[project.pk])
    return [
        {"title": "Dashboard", "url": dashboard, "icon": "monitoring"},
        {"title": "Conversations", "url": reverse("admin:bots_chat_changelist") + scoped, "icon": "forum"},
        {"title": other[0], "url": reverse(f"admin:{other[1]}_changelist") + scoped, "icon": other[2]},
    ]  # fmt: skip
