"""Charts drawn on the server as inline SVG: no JavaScript chart library, works without JS.

A chart is a list of (label, value) bars; labels are shown sparsely so that they never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 40, 22, 10


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, unit: str = "") -> SafeString:
    """A responsive bar chart (scales with its container through viewBox) with a y-axis maximum.
    `unit` follows the value in a bar's tooltip ("messages" by default)."""
    unit = unit or _("messages")
    if not bars or not any(value for _label, value in bars):
        # Not inside the f-string: xgettext would not find it there.
        empty = _("No messages in this period.")
        return mark_safe(
            f'<p class="text-body-secondary small mb-0" role="img" aria-label="{escape(title)}">'
            f"{escape(empty)}</p>"
        )
    peak = max(value for _label, value in bars)
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / len(bars)
    bar_w = max(step * 0.8, 1)
    # At most ~12 labels along the x axis, whatever the number of bars.
    label_every = max(1, -(-len(bars) // 12))
    parts = [
        (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        ),
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 4}" y2="{TOP + plot_h}" stroke="#adb5bd"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" font-size="10" text-anchor="end" fill="#6c757d">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="10" text-anchor="end" fill="#6c757d">0</text>',
    ]
    for i, (label, value) in enumerate(bars):
        h = plot_h * value / peak
        x = LEFT + i * step + (step - bar_w) / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="#0d6efd"><title>{escape(label)}: {value} {escape(unit)}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{LEFT + i * step + step / 2:.1f}" y="{HEIGHT - 6}" font-size="10" '
                f'text-anchor="middle" fill="#6c757d">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def fill_buckets(
    counts: dict[datetime, int], start: datetime, end: datetime, size: timedelta
) -> list[tuple[datetime, int]]:
    """Counts per bucket from `start` to `end` with empty buckets as zeros, so gaps show as gaps.

    `counts` keys are bucket starts (e.g. from TruncHour); keys outside the range are dropped.
    """
    buckets: list[tuple[datetime, int]] = []
    at = start
    while at <= end:
        buckets.append((at, counts.get(at, 0)))
        at += size
    return buckets


def coarsen(buckets: list[tuple[datetime, int]], most: int) -> tuple[list[tuple[datetime, int]], int]:
    """Merge neighbouring buckets until there are at most `most`; returns them and the merge factor."""
    factor = max(1, -(-len(buckets) // most))
    if factor == 1:
        return buckets, 1
    merged = [
        (buckets[i][0], sum(n for _, n in buckets[i : i + factor])) for i in range(0, len(buckets), factor)
    ]
    return merged, factor
