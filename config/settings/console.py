"""The operator console's look (django-unfold): site name, sidebar; the pages themselves live in console/."""

from django.urls import reverse_lazy

UNFOLD = {
    "SITE_TITLE": "Switchboard console",
    "SITE_HEADER": "Switchboard",
    "SITE_SUBHEADER": "Operator console",
    "SITE_SYMBOL": "forum",
    "SITE_URL": reverse_lazy("admin:index"),
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_BACK_BUTTON": False,
    "BORDER_RADIUS": "6px",
    "STYLES": [],
    "SIDEBAR": {"show_search": True, "show_all_applications": True},
}
