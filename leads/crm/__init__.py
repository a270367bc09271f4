"""CRM backends: the Telegram lead group and generic HTTP webhooks."""

from leads.crm.base import CrmBackend, CrmError, CrmPermanentError, crm_backends_for

__all__ = ["CrmBackend", "CrmError", "CrmPermanentError", "crm_backends_for"]
