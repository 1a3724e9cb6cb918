"""Server-rendered SVG charts: the price distribution with its benchmark, and the experts'
score spread per criterion that makes outlier scoring visible.

Plain functions returning SVG text, with no Flask: pages embed them inline, the evaluation
record embeds them in its PDF. No scripts and no style attributes (the CSP allows neither
inline): colours are SVG presentation attributes. Every chart carries <title> and <desc>
for screen readers, and every text is escaped. Coordinates are floats (drawing only); the
values printed go through the caller's `format_value` (e.g. money with its currency).

Every chart has a legend, and its texts are placed with an estimate of their width
(`text_width`, generous for Latin and CJK alike): row labels are shortened to their column,
legend entries wrap, tick labels thin out, so no two labels overlap.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from html import escape
from itertools import count

WIDTH = 640
LABEL_WIDTH = 190
RIGHT_MARGIN = 70
ROW_HEIGHT = 28
TOP = 34
AXIS_SPACE = 34
FONT_SIZE = 12
LEGEND_FONT_SIZE = 11
LEGEND_LINE = 18
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#d1d5db"
ACCENT = "#1d4ed8"
WARNING = "#b91c1c"
BAND = "#dbeafe"
# One colour per expert (Okabe-Ito and Tableau hues, distinguishable for most colour vision).
EXPERT_COLOURS = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#6b4c9a",
    "#8c564b",
    "#4d4d4d",
    "#bcbd22",
)
# Latin, Hangul and Han in one family: the PDF renderer and browsers pick per glyph.
FONT_FAMILY = "Noto Sans CJK SC, Noto Sans CJK KR, Noto Sans, DejaVu Sans, sans-serif"

_ids = count(1)

Formatter = Callable[[Decimal], str]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _plain(value: Decimal) -> str:
    return format(value, "f")


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """A generous estimate of the drawn width of `text` in px: wide (CJK) characters one em,
    the others 0.62 em (digits and Latin letters of a sans-serif are narrower). Labels are
    placed and shortened with it, so they do not overlap by construction."""
    width = 0.0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += size if unicodedata.east_asian_width(char) in ("W", "F") else size * 0.62
    return width


def _fit(label: str, width: float, size: float = FONT_SIZE) -> str:
    """`label` shortened with an ellipsis to fit `width` px."""
    if text_width(label, size) <= width:
        return label
    out = ""
    for char in label:
        if text_width(out + char + "…", size) > width:
            break
        out += char
    return out + "…"


def _scale(low: Decimal, high: Decimal, left: float, right: float):
    span = high - low
    if span <= 0:
        span = Decimal(1)

    def x(value: Decimal) -> float:
        return left + float((value - low) / span) * (right - left)

    return x


def _svg(height: float, title: str, desc: str, body: list[str]) -> str:
    n = next(_ids)
    title_id, desc_id = f"chart-title-{n}", f"chart-desc-{n}"
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_num(height)}" '
            f'width="100%" role="img" aria-labelledby="{title_id} {desc_id}" '
            f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}" class="chart">',
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


def _tick_text(value: Decimal, fmt: Formatter) -> str:
    return fmt(value.normalize() if value == value.to_integral() else value)


def _ticks(
    low: Decimal, high: Decimal, x, y: float, fmt: Formatter = _plain, caption: str | None = None
) -> list[str]:
    """The axis at `y` with its tick labels (a wider step when the labels would touch) and,
    below them, its caption (e.g. "Price (CNY)")."""
    out = [f'<line x1="{_num(x(low))}" y1="{y}" x2="{_num(x(high))}" y2="{y}" stroke="{MUTED}"/>']
    step = _nice_step(high - low)
    while True:
        first = (low / step).to_integral_value(rounding="ROUND_CEILING") * step
        values = []
        value = first
        while value <= high:
            values.append(value)
            value += step
        widest = max((text_width(_tick_text(v, fmt)) for v in values), default=0)
        gap = x(first + step) - x(first)
        if len(values) < 3 or gap >= widest + 8:
            break
        step *= 2
    for value in values:
        px = _num(x(value))
        out.append(f'<line x1="{px}" y1="{y}" x2="{px}" y2="{y + 4}" stroke="{MUTED}"/>')
        out.append(
            f'<text x="{px}" y="{y + 16}" text-anchor="middle" fill="{MUTED}">'
            f"{_e(_tick_text(value, fmt))}</text>"
        )
    if caption:
        middle = (x(low) + x(high)) / 2
        out.append(
            f'<text x="{_num(middle)}" y="{y + 32}" text-anchor="middle" fill="{INK}">'
            f"{_e(_fit(caption, x(high) - x(low)))}</text>"
        )
    return out


def _short(label: str, limit: int = 26) -> str:
    """A row label that fits the label column (and at most `limit` characters)."""
    label = label if len(label) <= limit else label[: limit - 1] + "…"
    return _fit(label, LABEL_WIDTH - 14)


def _legend(items: Sequence[tuple[str, str]], top: float) -> tuple[list[str], float]:
    """Legend entries (swatch SVG drawn at (0, 0) in a 14 x 14 box, label) laid out left to
    right from x = 12, wrapping to a new line when an entry would pass the right edge. Each
    entry's width is its label's estimated width, so entries never overlap. Returns the
    elements and the height used."""
    if not items:
        return [], 0.0
    body: list[str] = []
    x, line = 12.0, 0
    for swatch, text in items:
        text = _fit(text, WIDTH - 60, LEGEND_FONT_SIZE)
        width = 18 + text_width(text, LEGEND_FONT_SIZE) + 16
        if x + width > WIDTH - 8 and x > 12:
            x, line = 12.0, line + 1
        y = top + line * LEGEND_LINE
        body.append(
            f'<g class="legend-item" transform="translate({_num(x)},{_num(y)})">{swatch}'
            f'<text x="18" y="11" font-size="{LEGEND_FONT_SIZE}" fill="{INK}">{_e(text)}</text>'
            "</g>"
        )
        x += width
    height = (line + 1) * LEGEND_LINE
    return [f'<g class="legend">{"".join(body)}</g>'], height


def price_chart_svg(
    prices: Sequence[tuple[str, Decimal]],
    benchmark: Decimal | None,
    *,
    title: str = "Price distribution",
    benchmark_label: str = "Benchmark",
    price_label: str | None = None,
    axis_label: str | None = None,
    format_value: Formatter = _plain,
    desc: str | None = None,
) -> str:
    """A dot per bid on a price axis (rows labelled, e.g. by bidder name), with the
    benchmark as a dashed line and a legend. `prices`: (label, price) pairs, drawn lowest
    first. `format_value` prints amounts (e.g. with the currency), `axis_label` names the
    axis (e.g. "Price (CNY)"), `price_label` the dots in the legend."""
    rows = sorted(prices, key=lambda p: (p[1], p[0]))
    values = [p for _, p in rows] + ([benchmark] if benchmark is not None else [])
    if desc is None:
        listed = "; ".join(f"{label}: {format_value(price)}" for label, price in rows)
        desc = f"{listed}." + (
            f" {benchmark_label}: {format_value(benchmark)}." if benchmark else ""
        )
    legend_items = []
    if price_label:
        legend_items.append((f'<circle cx="7" cy="7" r="5" fill="{ACCENT}"/>', price_label))
    if benchmark is not None:
        legend_items.append(
            (
                f'<line x1="7" y1="0" x2="7" y2="14" stroke="{WARNING}" stroke-width="2" '
                f'stroke-dasharray="4 3"/>',
                f"{benchmark_label}: {format_value(benchmark)}",
            )
        )
    legend, legend_height = _legend(legend_items, 6)
    top = TOP + legend_height
    axis_space = AXIS_SPACE + (18 if axis_label else 0)
    height = top + max(len(rows), 1) * ROW_HEIGHT + axis_space
    body: list[str] = list(legend)
    if not rows:
        return _svg(height, title, desc, body)
    low, high = min(values), max(values)
    pad = (high - low) / Decimal(10) if high > low else max(abs(high) / Decimal(10), Decimal(1))
    low, high = max(low - pad, Decimal(0)) if low >= 0 else low - pad, high + pad
    right = WIDTH - RIGHT_MARGIN
    x = _scale(low, high, LABEL_WIDTH, right)
    axis_y = top + len(rows) * ROW_HEIGHT + 4
    if benchmark is not None:
        bx = _num(x(benchmark))
        body.append(
            f'<line x1="{bx}" y1="{_num(top - 8)}" x2="{bx}" y2="{_num(axis_y)}" '
            f'stroke="{WARNING}" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    for i, (label, price) in enumerate(rows):
        y = top + i * ROW_HEIGHT + ROW_HEIGHT / 2
        body.append(
            f'<line x1="{LABEL_WIDTH}" y1="{_num(y)}" x2="{right}" '
            f'y2="{_num(y)}" stroke="{GRID}" stroke-width="0.5"/>'
        )
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{_num(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{_e(_short(label))}</text>"
        )
        shown = format_value(price)
        body.append(
            f'<circle cx="{_num(x(price))}" cy="{_num(y)}" r="6" fill="{ACCENT}">'
            f"<title>{_e(label)}: {_e(shown)}</title></circle>"
        )
        # The amount beside its dot, on the side where it fits within the chart.
        if x(price) + 10 + text_width(shown) <= WIDTH - 4:
            body.append(
                f'<text x="{_num(x(price) + 10)}" y="{_num(y - 8)}" fill="{INK}">{_e(shown)}</text>'
            )
        else:
            body.append(
                f'<text x="{_num(x(price) - 10)}" y="{_num(y - 8)}" text-anchor="end" '
                f'fill="{INK}">{_e(shown)}</text>'
            )
    body += _ticks(low, high, x, axis_y, format_value, axis_label)
    return _svg(height, title, desc, body)


def _expert_colours(rows: Sequence[tuple[str, Mapping[str, Decimal], object]]) -> dict[str, str]:
    experts = sorted({e for _, scores, _ in rows for e in scores}, key=lambda e: (len(e), e))
    return {e: EXPERT_COLOURS[i % len(EXPERT_COLOURS)] for i, e in enumerate(experts)}


def score_spread_svg(
    rows: Sequence[tuple[str, Mapping[str, Decimal], frozenset[str] | set[str]]],
    max_points: Decimal,
    *,
    title: str,
    outlier_pct: Decimal = Decimal(30),
    mean_label: str = "mean",
    outlier_label: str = "outlier",
    band_label: str | None = None,
    axis_label: str | None = None,
    format_value: Formatter = _plain,
    desc: str | None = None,
) -> str:
    """One criterion: a row per bid (label, e.g. its code), a dot per expert score in the
    expert's colour, the panel mean as a vertical bar with the band within which a score is
    not an outlier, and flagged scores ringed in red. A legend names each expert's colour,
    the mean, the band (`band_label`) and the outlier ring; no other text is drawn inside the
    plot, so labels cannot collide. `rows`: (label, {expert: score}, experts flagged as
    outliers)."""
    means = {
        label: (sum(scores.values(), Decimal(0)) / len(scores)) if scores else None
        for label, scores, _ in rows
    }
    if desc is None:
        parts = []
        for label, scores, flagged in rows:
            listed = ", ".join(
                f"{e} {format_value(v)}" + (f" ({outlier_label})" if e in flagged else "")
                for e, v in sorted(scores.items())
            )
            mean = means[label]
            parts.append(
                f"{label}: {listed}; {mean_label} "
                f"{format_value(mean.quantize(Decimal('0.01'))) if mean is not None else '-'}"
            )
        desc = "; ".join(parts) + "." if parts else "-"
    colours = _expert_colours(rows)
    legend_items = [
        (f'<circle cx="7" cy="7" r="4.5" fill="{colour}"/>', expert)
        for expert, colour in colours.items()
    ]
    legend_items.append(
        (f'<line x1="7" y1="0" x2="7" y2="14" stroke="{ACCENT}" stroke-width="2"/>', mean_label)
    )
    if band_label:
        legend_items.append(
            (f'<rect x="0" y="2" width="14" height="10" fill="{BAND}"/>', band_label)
        )
    if any(flagged for _, _, flagged in rows):
        legend_items.append(
            (
                f'<circle cx="7" cy="7" r="5.5" fill="none" stroke="{WARNING}" stroke-width="2"/>',
                outlier_label,
            )
        )
    legend, legend_height = _legend(legend_items, 6)
    top = TOP + legend_height - 14
    row_h = ROW_HEIGHT + 8
    axis_space = AXIS_SPACE + (18 if axis_label else 0)
    height = top + max(len(rows), 1) * row_h + axis_space
    body: list[str] = list(legend)
    x = _scale(Decimal(0), max_points, LABEL_WIDTH, WIDTH - RIGHT_MARGIN)
    band = max_points * outlier_pct / Decimal(100)
    for i, (label, scores, flagged) in enumerate(rows):
        row_top = top + i * row_h
        y = row_top + row_h / 2
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{_num(y + 4)}" text-anchor="end" fill="{INK}">'
            f"{_e(_short(label))}</text>"
        )
        mean = means[label]
        if mean is not None:
            lo, hi = max(mean - band, Decimal(0)), min(mean + band, max_points)
            body.append(
                f'<rect x="{_num(x(lo))}" y="{_num(row_top + 6)}" width="{_num(x(hi) - x(lo))}" '
                f'height="{_num(row_h - 12)}" fill="{BAND}"/>'
            )
            mx = _num(x(mean))
            body.append(
                f'<line x1="{mx}" y1="{_num(row_top + 4)}" x2="{mx}" '
                f'y2="{_num(row_top + row_h - 4)}" stroke="{ACCENT}" stroke-width="2">'
                f"<title>{_e(mean_label)} {_e(format_value(mean.quantize(Decimal('0.01'))))}"
                "</title></line>"
            )
        body.append(
            f'<line x1="{LABEL_WIDTH}" y1="{_num(y)}" x2="{WIDTH - RIGHT_MARGIN}" '
            f'y2="{_num(y)}" stroke="{GRID}" stroke-width="0.5"/>'
        )
        # Equal scores stack upwards so every expert's dot stays visible.
        at: dict[Decimal, list[str]] = {}
        for expert, value in sorted(scores.items(), key=lambda item: (len(item[0]), item[0])):
            at.setdefault(value, []).append(expert)
        for value, experts in at.items():
            cx = _num(x(value))
            # (closer together when many experts agree, so the stack stays in its row)
            spacing = min(8.0, (row_h - 12) / max(len(experts) - 1, 1))
            for k, expert in enumerate(experts):
                cy = _num(y + 8 - k * spacing)
                tip = f"<title>{_e(expert)} {_e(format_value(value))}"
                if expert in flagged:
                    tip += f" ({_e(outlier_label)})"
                    body.append(
                        f'<circle cx="{cx}" cy="{cy}" r="7" fill="none" stroke="{WARNING}" '
                        f'stroke-width="2.5">{tip}</title></circle>'
                    )
                body.append(
                    f'<circle cx="{cx}" cy="{cy}" r="4" fill="{colours[expert]}">'
                    f"{tip}</title></circle>"
                )
    axis_y = top + len(rows) * row_h + 4
    body += _ticks(Decimal(0), max_points, x, axis_y, format_value, axis_label)
    return _svg(height, title, desc, body)
