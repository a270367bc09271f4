"""The history of a project's prompts and settings (django-simple-history): who changed what, as a diff, and revert.

Scoped like the rest of the console: another project's history answers exactly like a missing project. Viewers
read the history; operators also revert (a revert is a change like any other, and shows in the history too).
The bot token and the webhook secret are not in the history at all (excluded on the model).
"""

import difflib
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.paginator import Page
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

# Text long enough to be read as lines (prompts, replies) is shown as a line diff; short values as old → new.
LINE_DIFF_FROM = 80


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str
    diff: SafeString


def field_diff(old: object, new: object) -> SafeString:
    old_text, new_text = "" if old is None else str(old), "" if new is None else str(new)
    if max(len(old_text), len(new_text)) < LINE_DIFF_FROM and "\n" not in old_text + new_text:
        return format_html('<del class="history-old">{}</del> → <ins class="history-new">{}</ins>', old_text, new_text)
    lines = difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), "before", "after", lineterm="", n=2)
    rows = format_html_join(
        "\n", '<span class="{}">{}</span>', ((_line_class(line), line) for line in list(lines)[2:])
    )  # fmt: skip
    return format_html('<pre class="history-diff" style="white-space: pre-wrap; margin: 0">{}</pre>', rows)


def _line_class(line: str) -> str:
    return {"+": "history-new", "-": "history-old", "@": "history-hunk"}.get(line[:1], "")


class ProjectHistoryAdmin(SimpleHistoryAdmin):
    object_history_list_template = "admin/tenants/project/history_list.html"
    history_list_per_page = 50

    def _visible(self, request: HttpRequest, object_id: str) -> bool:
        return self.get_queryset(request).filter(pk=object_id).exists()

    def _missing(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # The admin's own answer for an object that does not exist, so that another tenant's id tells nothing.
        return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        if not self._visible(request, object_id):
            return self._missing(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if not self._visible(request, object_id):
            return self._missing(request, object_id)
        if request.method == "POST" and not self.has_change_permission(request, self.get_object(request, object_id)):
            messages.error(request, "Only operators and owners of the project may revert it.")
            return HttpResponseRedirect(reverse("admin:tenants_project_history", args=[object_id]))
        return super().history_form_view(request, object_id, version_id, extra_context)

    def set_history_delta_changes(
        self, request: HttpRequest, historical_records: Page, foreign_keys_are_objs: bool = True
    ) -> None:
        """Each record gets `field_changes`: what it changed against the record before it, as diffs."""
        previous = None
        for record in reversed(list(historical_records)):  # newest first on the page: walk oldest first
            before = previous or record.prev_record
            changes = []
            if before is not None:
                delta = record.diff_against(before, foreign_keys_are_objs=foreign_keys_are_objs)
                for change in delta.changes:
                    label = str(self.model._meta.get_field(change.field).verbose_name)
                    changes.append(
                        FieldChange(label, str(change.old), str(change.new), field_diff(change.old, change.new))
                    )
            record.field_changes = changes
            previous = record
