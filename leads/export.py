"""Leads as CSV for operators: what a spreadsheet opens must never run a customer's words as a formula."""

import csv
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from leads.models import Lead

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

LEAD_CSV_FIELDS = ["id", "project", "status", "client_status", "name", "city", "service", "contact", "summary",
                   "created_at", "sent_at"]  # fmt: skip

# A cell starting with one of these is a formula in Excel, LibreOffice and Google Sheets (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def leads_write_csv(*, leads: Iterable[Lead], stream: "SupportsWrite[str]") -> None:
    writer = csv.writer(stream)
    writer.writerow(LEAD_CSV_FIELDS)
    for lead in leads:
        values = [lead.pk, lead.project.slug, *(getattr(lead, field) for field in LEAD_CSV_FIELDS[2:])]
        writer.writerow([csv_cell(value) for value in values])
