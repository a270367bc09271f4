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
    # Tailwind's blue, so that the theme and the console's SVG charts (console/charts.py) share one accent.
    "COLORS": {
        "primary": {
            "50": "oklch(97% .014 254.604)",
            "100": "oklch(93.2% .032 255.585)",
            "200": "oklch(88.2% .059 254.128)",
            "300": "oklch(80.9% .105 251.813)",
            "400": "oklch(70.7% .165 254.624)",
            "500": "oklch(62.3% .214 259.815)",
            "600": "oklch(54.6% .245 262.881)",
            "700": "oklch(48.8% .243 264.376)",
            "800": "oklch(42.4% .199 265.638)",
            "900": "oklch(37.9% .146 265.522)",
            "950": "oklch(28.2% .091 267.935)",
        },
    },
}
