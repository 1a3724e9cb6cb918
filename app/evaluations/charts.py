"""Server-rendered SVG charts: the price distribution with its benchmark, and the experts'
score spread per criterion that makes outlier scoring visible.

Plain functions returning SVG text, with no Flask: pages embed them inline, the evaluation
record embeds them in its PDF. No scripts and no style attributes (the CSP allows neither
inline): colours are SVG presentation attributes. Every chart carries <title> and <desc>
for screen readers, and every text is escaped. Coordinates are floats (drawing only); the
values printed are the decimal strings given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from itertools import count

WIDTH = 640
LABEL_WIDTH = 190
RIGHT_MARGIN = 70
ROW_HEIGHT = 28
TOP = 34
AXIS_SPACE = 34
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#d1d5db"
ACCENT = "#1d4ed8"
WARNING = "#b91c1c"
BAND = "#dbeafe"

_ids = count(1)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _scale(low: Decimal, high: Decimal, left: float, right: float):
    span = high - low
    if span <= 0:
        span = Decimal(1)

    def x(value: Decimal) -> float:
        return left + float((value - low) / span) * (right - left)

    return x


def _svg(height: int, title: str, desc: str, body: list[str]) -> str:
    n = next(_ids)
    title_id, desc_id = f"chart-title-{n}", f"chart-desc-{n}"
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'width="100%" role="img" aria-labelledby="{title_id} {desc_id}" '
            f'font-family="sans-serif" font-size="12" class="chart">',
            f'<title id="{title_id}">{_e(title)}</title>',
            f'<desc id="{desc_id}">{_e(desc)}</desc>',
            *body,
            "</svg>",
        ]
    )


def _nice_step(span: Decimal, count: int = 4) -> Decimal:
    """A step of 1, 2 or 5 times a power of ten giving about `count` intervals."""
    if span <= 0:
        return Decimal(1)
    raw = span / count
    magnitude = Decimal(10) ** raw.adjusted()
    for factor in (1, 2, 5, 10):
        if magnitude * factor >= raw:
            return magnitude * factor
    return magnitude * 10  # pragma: no cover


def _ticks(low: Decimal, high: Decimal, x, y: float) -> list[str]:
    out = [f'<line x1="{_num(x(low))}" y1="{y}" x2="{_num(x(high))}" y2="{y}" stroke="{MUTED}"/>']
    step = _nice_step(high - low)
    value = (low / step).to_integral_value(rounding="ROUND_CEILING") * step
    while value <= high:
        px = _num(x(value))
        out.append(f'<line x1="{px}" y1="{y}" x2="{px}" y2="{y + 4}" stroke="{MUTED}"/>')
        out.append(
            f'<text x="{px}" y="{y + 16}" text-anchor="middle" fill="{MUTED}">'
            f"{_e(_plain(value.normalize() if value == value.to_integral() else value))}</text>"
        )
        value += step
    return out


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def price_chart_svg(
    prices: Sequence[tuple[str, Decimal]],
    benchmark: Decimal | None,
    *,
    title: str = "Price distribution",
    benchmark_label: str = "Benchmark",
    desc: str | None = None,
) -> str:
    """A dot per bid on a price axis (rows labelled, e.g. by bidder name), with the
    benchmark as a dashed line. `prices`: (label, price) pairs, drawn lowest first."""
    rows = sorted(prices, key=lambda p: (p[1], p[0]))
    values = [p for _, p in rows] + ([benchmark] if benchmark is not None else [])
    height = TOP + max(len(rows), 1) * ROW_HEIGHT + AXIS_SPACE
    if desc is None:
        listed = "; ".join(f"{label}: {_plain(price)}" for label, price in rows)
        desc = f"{listed}." + (f" {benchmark_label}: {_plain(benchmark)}." if benchmark else "")
    body: list[str] = []
    if not rows:
        return _svg(height, title, desc, body)
    low, high = min(values), max(values)
    pad = (high - low) / Decimal(10) if high > low else max(abs(high) / Decimal(10), Decimal(1))
    low, high = max(low - pad, Decimal(0)) if low >= 0 else low - pad, high + pad
    x = _scale(low, high, LABEL_WIDTH, WIDTH - RIGHT_MARGIN)
    axis_y = TOP + len(rows) * ROW_HEIGHT + 4
    for i, (label, price) in enumerate(rows):
        y = TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2
        body.append(
            f'<line x1="{LABEL_WIDTH}" y1="{_num(y)}" x2="{WIDTH - RIGHT_MARGIN}" '
            f'y2="{_num(y)}" stroke="{GRID}" stroke-width="0.5"/>'
        )
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{_num(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{_e(_short(label))}</text>"
        )
        body.append(
            f'<circle cx="{_num(x(price))}" cy="{_num(y)}" r="6" fill="{ACCENT}">'
            f"<title>{_e(label)}: {_e(_plain(price))}</title></circle>"
        )
        body.append(
            f'<text x="{_num(x(price) + 10)}" y="{_num(y - 8)}" fill="{INK}">'
            f"{_e(_plain(price))}</text>"
        )
    if benchmark is not None:
        bx = _num(x(benchmark))
        body.append(
            f'<line x1="{bx}" y1="{TOP - 8}" x2="{bx}" y2="{axis_y}" stroke="{WARNING}" '
            f'stroke-width="2" stroke-dasharray="6 4"/>'
        )
        body.append(
            f'<text x="{bx}" y="{TOP - 14}" text-anchor="middle" fill="{WARNING}">'
            f"{_e(benchmark_label)}: {_e(_plain(benchmark))}</text>"
        )
    body += _ticks(low, high, x, axis_y)
    return _svg(height, title, desc, body)


def score_spread_svg(
    rows: Sequence[tuple[str, Mapping[str, Decimal], frozenset[str] | set[str]]],
    max_points: Decimal,
    *,
    title: str,
    outlier_pct: Decimal = Decimal(30),
    mean_label: str = "mean",
    outlier_label: str = "outlier",
    desc: str | None = None,
) -> str:
    """One criterion: a row per bid (label, e.g. its code), a dot per expert score (marked
    with the expert id), the panel mean as a vertical bar with the band within which a score
    is not an outlier, and flagged scores drawn as red rings. `rows`: (label, {expert:
    score}, experts flagged as outliers)."""
    height = TOP + max(len(rows), 1) * ROW_HEIGHT * 2 + AXIS_SPACE
    means = {
        label: (sum(scores.values(), Decimal(0)) / len(scores)) if scores else None
        for label, scores, _ in rows
    }
    if desc is None:
        parts = []
        for label, scores, flagged in rows:
            listed = ", ".join(
                f"{e} {_plain(v)}" + (f" ({outlier_label})" if e in flagged else "")
                for e, v in sorted(scores.items())
            )
            mean = means[label]
            parts.append(
                f"{label}: {listed}; {mean_label} "
                f"{_plain(mean.quantize(Decimal('0.01'))) if mean is not None else '-'}"
            )
        desc = "; ".join(parts) + "." if parts else "-"
    body: list[str] = []
    x = _scale(Decimal(0), max_points, LABEL_WIDTH, WIDTH - RIGHT_MARGIN)
    band = max_points * outlier_pct / Decimal(100)
    row_h = ROW_HEIGHT * 2
    for i, (label, scores, flagged) in enumerate(rows):
        top = TOP + i * row_h
        y = top + row_h / 2
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{_num(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{_e(_short(label))}</text>"
        )
        mean = means[label]
        if mean is not None:
            lo, hi = max(mean - band, Decimal(0)), min(mean + band, max_points)
            body.append(
                f'<rect x="{_num(x(lo))}" y="{_num(top + 6)}" width="{_num(x(hi) - x(lo))}" '
                f'height="{_num(row_h - 12)}" fill="{BAND}"/>'
            )
            mx = _num(x(mean))
            body.append(
                f'<line x1="{mx}" y1="{_num(top + 4)}" x2="{mx}" y2="{_num(top + row_h - 4)}" '
                f'stroke="{ACCENT}" stroke-width="2"><title>{_e(mean_label)} '
                f"{_e(_plain(mean.quantize(Decimal('0.01'))))}</title></line>"
            )
        body.append(
            f'<line x1="{LABEL_WIDTH}" y1="{_num(y)}" x2="{WIDTH - RIGHT_MARGIN}" '
            f'y2="{_num(y)}" stroke="{GRID}" stroke-width="0.5"/>'
        )
        # Equal scores stack upwards so every expert's dot stays visible.
        at: dict[Decimal, list[str]] = {}
        for expert, value in sorted(scores.items()):
            at.setdefault(value, []).append(expert)
        for value, experts in at.items():
            cx = _num(x(value))
            for k, expert in enumerate(experts):
                cy = _num(y + 8 - k * 9)
                tip = f"<title>{_e(expert)}: {_e(_plain(value))}"
                if expert in flagged:
                    tip += f" ({_e(outlier_label)})"
                    body.append(
                        f'<circle cx="{cx}" cy="{cy}" r="7" fill="none" stroke="{WARNING}" '
                        f'stroke-width="2.5">{tip}</title></circle>'
                    )
                body.append(
                    f'<circle cx="{cx}" cy="{cy}" r="4" '
                    f'fill="{WARNING if expert in flagged else INK}">{tip}</title></circle>'
                )
            body.append(
                f'<text x="{cx}" y="{_num(top + 12)}" text-anchor="middle" font-size="9" '
                f'fill="{MUTED}">{_e(",".join(experts))}</text>'
            )
    axis_y = TOP + len(rows) * row_h + 4
    body += _ticks(Decimal(0), max_points, x, axis_y)
    return _svg(height, title, desc, body)
