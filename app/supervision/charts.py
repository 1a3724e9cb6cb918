"""Server-rendered, accessible SVG bar charts of the supervision statistics.

No scripts and no style attributes (the CSP allows neither inline): colours are SVG
presentation attributes. Each chart is an image (role="img") named by its <title> and
described by its <desc>, which states every value, so a screen reader hears the figures; the
table beside it holds the same figures. Every text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from itertools import count

WIDTH = 640
LABEL_WIDTH = 150
RIGHT_MARGIN = 70
ROW_HEIGHT = 24
TOP = 10
INK = "#1f2937"
MUTED = "#6b7280"
ACCENT = "#1d4ed8"
NEGATIVE = "#b91c1c"

_ids = count(1)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _text(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def bar_chart_svg(
    title: str, desc: str, bars: Sequence[tuple[str, Decimal | int | None]], unit: str = ""
) -> str:
    """Horizontal bars, one per (label, value); a value of None is drawn as "—" (no data)."""
    n = next(_ids)
    title_id, desc_id = f"stat-chart-title-{n}", f"stat-chart-desc-{n}"
    values = [Decimal(v) for _label, v in bars if v is not None]
    low = min([Decimal(0), *values])
    high = max([Decimal(0), *values])
    span = (high - low) or Decimal(1)
    left, right = LABEL_WIDTH, WIDTH - RIGHT_MARGIN

    def x(value: Decimal) -> float:
        return left + float((value - low) / span) * (right - left)

    zero = x(Decimal(0))
    height = TOP * 2 + ROW_HEIGHT * max(len(bars), 1)
    spoken = "; ".join(
        f"{label}: {_text(value) + unit if value is not None else '—'}" for label, value in bars
    )
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-labelledby="{title_id} {desc_id}" font-family="sans-serif" '
        f'font-size="12" class="chart">',
        f'<title id="{title_id}">{_e(title)}</title>',
        f'<desc id="{desc_id}">{_e(desc)} {_e(spoken)}</desc>',
        f'<line x1="{zero:.1f}" y1="{TOP}" x2="{zero:.1f}" y2="{height - TOP}" stroke="{MUTED}"/>',
    ]
    for i, (label, value) in enumerate(bars):
        y = TOP + i * ROW_HEIGHT
        short = label if len(label) <= 22 else label[:21] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" fill="{INK}">{_e(short)}</text>'
        )
        if value is None:
            body.append(f'<text x="{zero + 4:.1f}" y="{y + 16}" fill="{MUTED}">—</text>')
            continue
        end = x(Decimal(value))
        start, stop = min(zero, end), max(zero, end)
        colour = NEGATIVE if Decimal(value) < 0 else ACCENT
        body.append(
            f'<rect x="{start:.1f}" y="{y + 4}" width="{max(stop - start, 1):.1f}" '
            f'height="{ROW_HEIGHT - 8}" fill="{colour}"/>'
        )
        body.append(
            f'<text x="{stop + 4:.1f}" y="{y + 16}" fill="{INK}">{_e(_text(value) + unit)}</text>'
        )
    body.append("</svg>")
    return "".join(body)
