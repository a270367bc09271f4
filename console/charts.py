"""Charts drawn on the server as inline SVG: no script, no CDN, readable without JavaScript."""

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

ACCENT = "#2563eb"  # the console theme's primary blue (config/settings/console.py)
ACCENT_SOFT = "#93c5fd"
WARN = "#dc2626"
GRID = "#e5e7eb"
TEXT = "#4b5563"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def column_chart(
    columns: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 560,
    height: int = 200,
    value_label: Callable[[float], str] = _number,
    reference: tuple[str, float] | None = None,
) -> SafeString:
    """Vertical bars over time (one per day), an optional dashed reference line (a daily budget)."""
    left, bottom, top = 44, 28, 14
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([value for _, value in columns] + [reference[1] if reference else 0, 0]) or 1
    step = plot_w / max(len(columns), 1)
    bar_w = max(step * 0.7, 1)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width: {width}px" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="{TEXT}">'
            f"{escape(value_label(peak * fraction))}</text>"
        )
    label_every = max(1, round(len(columns) / 8))
    for index, (label, value) in enumerate(columns):
        bar_h = plot_h * value / peak
        x = left + index * step + (step - bar_w) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" rx="2" '
            f'fill="{ACCENT}"><title>{escape(label)}: {escape(value_label(value))}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" font-size="10" text-anchor="middle" '
                f'fill="{TEXT}">{escape(label)}</text>'
            )
    if reference is not None:
        y = top + plot_h * (1 - reference[1] / peak)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{WARN}" stroke-dasharray="5 4"/>'
            f'<text x="{width - 10}" y="{y - 4:.1f}" font-size="10" text-anchor="end" fill="{WARN}">'
            f"{escape(reference[0])}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every piece of text above is escaped


def bar_list(
    items: Sequence[tuple[str, float]], *, title: str, width: int = 360, value_label: Callable[[float], str] = _number
) -> SafeString:
    """Horizontal bars for categories (leads by client status, matches by status)."""
    row_h, label_w = 26, 130
    height = max(len(items), 1) * row_h + 8
    peak = max([value for _, value in items] + [0]) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width: {width}px" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append(f'<text x="0" y="18" font-size="12" fill="{TEXT}">nothing in this period</text>')
    for index, (label, value) in enumerate(items):
        y = 4 + index * row_h
        bar_w = (width - label_w - 50) * value / peak
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end" fill="{TEXT}">'
            f"{escape(label[:22])}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(bar_w, 1):.1f}" height="16" rx="2" fill="{ACCENT_SOFT}"/>'
            f'<text x="{label_w + bar_w + 6:.1f}" y="{y + 15}" font-size="12" fill="{TEXT}">'
            f"{escape(value_label(value))}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every piece of text above is escaped


def meter(value: float, limit: float | None, *, title: str, label: str, width: int = 360) -> SafeString:
    """A filled bar of `value` against `limit` (spend against budget); red once the limit is passed."""
    share = min(value / limit, 1.0) if limit else 0.0
    color = WARN if limit and value > limit else ACCENT
    return mark_safe(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} 44" width="100%" '
        f'style="max-width: {width}px" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<rect x="0" y="4" width="{width}" height="18" rx="9" fill="{GRID}"/>'
        f'<rect x="0" y="4" width="{width * share:.1f}" height="18" rx="9" fill="{color}"/>'
        f'<text x="0" y="38" font-size="12" fill="{TEXT}">{escape(label)}</text></svg>'
    )  # the label and title are escaped
