"""The CRM backend interface: where a lead is posted, and how the posted lead is kept up to date."""

from collections.abc import Callable
from typing import Any, Protocol

from leads.models import CrmWebhook, Lead
from tenants.models import Project


class CrmError(RuntimeError):
    """A CRM send or refresh failed for now; retrying later may work. The text is safe to log.

    `refs` holds what was already posted before the failure: a retry passes it back to `send` so that
    nothing already in the CRM is posted twice.
    """

    def __init__(self, message: str, *, refs: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.refs: dict[str, Any] = dict(refs or {})


class CrmPermanentError(CrmError):
    """Retrying the same request cannot help (no lead group, bot not in it, CRM refused the lead)."""


ProgressHook = Callable[[dict[str, Any]], None]


class CrmBackend(Protocol):
    name: str  # "telegram_group" | "webhook:<id>": the LeadDispatch.backend of this backend

    def send(
        self, lead: Lead, *, partial_refs: dict[str, Any] | None = None, on_progress: ProgressHook | None = None
    ) -> dict[str, Any]:
        """Post the lead; the references to keep on its LeadDispatch. Raises CrmError.

        `partial_refs` is `CrmError.refs` of an earlier failed attempt: the parts it names are not resent.
        A backend that posts in several parts calls `on_progress(refs)` after each, so that the parts
        survive a crash of the worker (SIGKILL raises nothing to carry them in).
        """
        ...

    def refresh(self, lead: Lead, refs: dict[str, Any]) -> dict[str, Any]:
        """Update the posted lead in place (the lead is a living document); the new references."""
        ...


def crm_backends_for(project: Project) -> list[CrmBackend]:
    """The project's CRM backends: its Telegram lead group if set, then each of its active webhooks."""
    # Imported here: the backends import this module for the errors.
    from leads.crm.http_webhook import HttpWebhookCrm
    from leads.crm.telegram_group import TelegramGroupCrm

    backends: list[CrmBackend] = []
    if project.lead_group_id:
        backends.append(TelegramGroupCrm(project))
    webhooks = CrmWebhook.objects.filter(project=project, is_active=True).order_by("pk")
    backends.extend(HttpWebhookCrm(webhook) for webhook in webhooks)
    return backends


def refuse_other_tenants(*, project_id: int, lead: Lead, backend: str) -> None:
    """A backend serves one project: a lead of another project never reaches its CRM."""
    if lead.project_id != project_id or lead.chat.project_id != project_id:
        raise CrmPermanentError(f"lead {lead.pk} does not belong to the project of CRM backend {backend}")
