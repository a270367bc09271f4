"""Why a project changed, written on each of its history rows (the history page's "Change reason" column).

django-simple-history leaves the reason empty unless the caller sets one, and the history page then shows
"None" for every row. The reason here is where the change came from: the console (an edit, or a revert from
the history page), the API, or a command or task (no request).
"""

from typing import Any

from simple_history.models import HistoricalRecords


def change_reason(*, path: str | None, created: bool) -> str:
    if path is None:
        return "Created by a command" if created else "Changed by a command or task"
    if path.startswith("/api/"):
        return "Created through the API" if created else "Changed through the API"
    if "/history/" in path:
        return "Reverted in the console"
    return "Created in the console" if created else "Edited in the console"


def history_reason_fill(history_instance: Any, **kwargs: Any) -> None:
    """`pre_create_historical_record` receiver: a reason set by the caller is kept."""
    if history_instance.history_change_reason:
        return
    request = getattr(HistoricalRecords.context, "request", None)
    history_instance.history_change_reason = change_reason(
        path=getattr(request, "path", None), created=history_instance.history_type == "+"
    )
