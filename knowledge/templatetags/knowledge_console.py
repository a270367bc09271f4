"""The project console's knowledge freshness section: failing or stale sources and the latest crawl reports."""

from typing import Any

from django import template

from knowledge.selectors import crawl_job_summary, crawl_reports_latest, source_warnings
from tenants.models import Project

register = template.Library()


@register.inclusion_tag("admin/knowledge/console_freshness.html")
def knowledge_freshness(project: Project) -> dict[str, Any]:
    reports = crawl_reports_latest(project=project)
    return {
        "project": project,
        "warnings": source_warnings(project=project),
        "reports": [{"job": job, "summary": crawl_job_summary(job)} for job in reports],
    }
