"""Reads of the project console: the assembled system prompt and the knowledge base's crawl progress."""

from dataclasses import dataclass
from typing import Any

from bots.agent import system_prefix
from bots.kinds import toolset_for
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
            "finished": job.status in ("done", "failed"),
        }
        for job in jobs
    ]
