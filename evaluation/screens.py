"""Price screens for supervisors: statistics of one competition's bids and red flags.

Red flags, never verdicts: a flag asks a supervisor to look; it changes nothing in a tender.
Every function takes a plain list of prices (``Decimal``), one competition at a time (a
tender today, a lot once tenders have lots), and computes in the evaluation's Decimal
context (precision 28). Prices must be positive.

Statistics, with the bids sorted b1 <= b2 <= ... <= bn (``None`` when n is too small or the
statistic is undefined, e.g. a spread of zero):

- ``cv``: coefficient of variation s / mean, s the *sample* standard deviation (n - 1);
  n >= 3.
- ``skewness``: the adjusted Fisher-Pearson coefficient
  G1 = sqrt(n(n-1)) / (n-2) * m3 / m2^(3/2), with m_k = (1/n) * sum (x - mean)^k; n >= 3.
- ``kurtosis``: the standard sample excess kurtosis
  G2 = (n-1) / ((n-2)(n-3)) * ((n+1) * m4 / m2^2 - 3(n-1)); n >= 4.
- ``diffp``: (b2 - b1) / b1; n >= 3 (like the others: a margin between two bids alone says
  little about a competition).
- ``rd``: (b2 - b1) / s_losing, s_losing the sample standard deviation of b2..bn; n >= 3.
- ``rdnor``: (n - 1)(b2 - b1) / sum_{i=1}^{n-1} (b_{i+1} - b_i); n >= 3.

From the screening literature: Imhof, Karagök and Rutz, "Screening for bid rigging: does it
work?", Journal of Competition Law & Economics 14(2), 2018 (CV, RD); Huber and Imhof,
"Machine learning with screens for detecting bid-rigging cartels", International Journal of
Industrial Organization 65, 2019 (CV, skewness, kurtosis, DIFFP, RD, RDNOR). Collusion
narrows the spread of the bids (low CV, high kurtosis) and, with cover bids placed above a
designated winner, widens the gap between the two lowest bids relative to the losing bids
(high RD, DIFFP, RDNOR; negative skewness).

Flags (``ScreenThresholds`` holds every threshold; each default and its source):

- ``identical_prices`` (Open Contracting Partnership, Cardinal indicator R028 "identical bid
  prices"): two or more bids at exactly the same price; any n >= 2.
- ``low_price_variation``: CV < 0.06 and ``high_relative_distance``: RD > 1, the latter
  raised only together with a low CV (``rd_needs_low_cv``). The benchmarks and their
  combination follow Imhof, Karagök and Rutz (2018), who apply mutually reinforcing screens
  to single tenders (a CV below 6 %, an RD above 1: cover bids close together above a
  designated winner); calibrate them on the platform's own history before relying on them.
- ``high_kurtosis``, ``negative_skewness``, ``high_diffp``, ``high_rdnor``: off by default
  (threshold ``None``). Huber and Imhof (2019) use these as predictors in a trained model and
  publish no cut-off for a single tender; a centre that calibrates one can set it.
- ``close_margin_outlier`` (Cardinal R024, "price close to winning bid") and
  ``heavily_undercut_outlier`` (Cardinal R058, "heavily discounted bid"): the relative margin
  (b2 - b1) / b1 of this competition is <= Q1 - 1.5 IQR, or >= Q3 + 1.5 IQR, of the margins
  of comparable competitions (Tukey's fences, as Cardinal; quartiles by linear interpolation).
  Needs at least 10 comparable margins (platform default).
- ``equal_price_spacing``: the gaps between consecutive sorted prices all lie within 1 % of
  their mean (platform default; the regulations presume collusion when bids are "regularly
  spaced", implementing regulations art. 40); n >= 3.
- ``bids_near_ceiling``: at least half of the bids (and at least 2) lie within 2 % under the
  ceiling price (platform defaults; bids that crowd the ceiling suggest that nobody competes
  on price).
- ``round_number_clustering``: at least 75 % of n >= 3 bids are "round", i.e. have at most
  2 significant digits (e.g. 810000, 1200000; platform defaults; prices built from a bill of
  quantities are rarely round, agreed prices often are).

Each flag carries a ``score`` in [0, 1] (0.5 at its threshold, 1 at twice the threshold's
distance from 0 or beyond; 1 for certain facts such as identical prices), its ``threshold``
and its evidence ``params``.
These screens are for supervisors only; they are not part of the scoring file, which panels
and the public see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise

from evaluation.decimals import ZERO, evaluation_context, fmt
from evaluation.messages import render

ONE = Decimal(1)
SIX_PLACES = Decimal("0.000001")
MIN_BIDS = 3
MIN_BIDS_KURTOSIS = 4


@dataclass(frozen=True)
class ScreenThresholds:
    """Every threshold of the price screens, with its documented default (module docstring)."""

    cv_below: Decimal | None = Decimal("0.06")  # Imhof, Karagök and Rutz (2018)
    rd_above: Decimal | None = Decimal("1")  # Imhof, Karagök and Rutz (2018)
    # RD alone is often above 1 in small competitive tenders: Imhof, Karagök and Rutz
    # combine it with a low CV ("mutually reinforcing screens").
    rd_needs_low_cv: bool = True
    kurtosis_above: Decimal | None = None  # Huber and Imhof (2019): no published cut-off
    skewness_below: Decimal | None = None  # idem
    diffp_above: Decimal | None = None  # idem
    rdnor_above: Decimal | None = None  # idem
    iqr_factor: Decimal = Decimal("1.5")  # Cardinal R024 / R058 (Tukey's fences)
    min_comparable: int = 10  # platform default
    spacing_tolerance: Decimal = Decimal("0.01")  # platform default
    ceiling_margin: Decimal = Decimal("0.02")  # platform default
    ceiling_share: Decimal = Decimal("0.5")  # platform default
    round_digits: int = 2  # platform default: at most this many significant digits
    round_share: Decimal = Decimal("0.75")  # platform default

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ScreenThresholds:
        """Thresholds from configuration (decimal strings, integers, or null to disable)."""
        known = cls.__dataclass_fields__
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown screen threshold(s): {', '.join(unknown)}")
        out: dict[str, object] = {}
        for name, value in values.items():
            default = getattr(cls(), name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"threshold {name} must be true or false")
                out[name] = value
            elif isinstance(default, int):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"threshold {name} must be a positive integer")
                out[name] = value
            elif value is None:
                if name not in _OPTIONAL:
                    raise ValueError(f"threshold {name} cannot be disabled")
                out[name] = None
            else:
                out[name] = _decimal(value, f"threshold {name}")
        return cls(**out)


_OPTIONAL = frozenset(
    {"cv_below", "rd_above", "kurtosis_above", "skewness_below", "diffp_above", "rdnor_above"}
)


@dataclass(frozen=True)
class RedFlag:
    """One raised flag: its rule code, score in [0, 1], threshold and evidence."""

    code: str
    score: Decimal
    threshold: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return render(self.code, self.params)

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.code,
            "score": fmt(_six(self.score)),
            "threshold": self.threshold,
            "evidence": dict(self.params),
            "message": self.message,
        }


@dataclass(frozen=True)
class Statistics:
    n: int
    cv: Decimal | None
    skewness: Decimal | None
    kurtosis: Decimal | None
    diffp: Decimal | None
    rd: Decimal | None
    rdnor: Decimal | None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"n": self.n}
        for name in ("cv", "skewness", "kurtosis", "diffp", "rd", "rdnor"):
            value = getattr(self, name)
            out[name] = None if value is None else fmt(_six(value))
        return out


@dataclass(frozen=True)
class ScreenResult:
    statistics: Statistics
    flags: list[RedFlag]

    def to_json(self) -> dict[str, object]:
        return {**self.statistics.to_json(), "flags": [f.to_json() for f in self.flags]}


# --- input -----------------------------------------------------------------------------------


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        from evaluation.decimals import parse_decimal

        try:
            result = parse_decimal(value)
        except ValueError:
            raise ValueError(f"{what} must be a decimal string, not {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    else:
        raise ValueError(f"{what} must be a decimal string, not {value!r}")
    if not result.is_finite() or result < 0:
        raise ValueError(f"{what} must be a finite, non-negative number")
    return result


def _checked(prices: Sequence[Decimal]) -> list[Decimal]:
    for price in prices:
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise ValueError(f"every price must be a positive decimal, not {price!r}")
    return sorted(prices)


def _six(value: Decimal) -> Decimal:
    """Six decimal places for display (the flags compare full-precision values)."""
    with evaluation_context():
        return value.quantize(SIX_PLACES)


# --- statistics (each takes the prices in any order) -----------------------------------------


def _mean(values: Sequence[Decimal]) -> Decimal:
    return sum(values, ZERO) / len(values)


def _central_moment(values: Sequence[Decimal], mean: Decimal, k: int) -> Decimal:
    return sum(((v - mean) ** k for v in values), ZERO) / len(values)


def sample_sd(values: Sequence[Decimal]) -> Decimal:
    """Sample standard deviation (divisor n - 1); needs two values."""
    if len(values) < 2:
        raise ValueError("a sample standard deviation needs at least two values")
    with evaluation_context():
        mean = _mean(values)
        return (sum(((v - mean) ** 2 for v in values), ZERO) / (len(values) - 1)).sqrt()


def coefficient_of_variation(prices: Sequence[Decimal]) -> Decimal | None:
    """s / mean with s the sample standard deviation; None for fewer than 3 bids."""
    values = _checked(prices)
    if len(values) < MIN_BIDS:
        return None
    with evaluation_context():
        return sample_sd(values) / _mean(values)


def _spread_moments(values: list[Decimal], order: int) -> tuple[Decimal, Decimal] | None:
    """The second central moment and the one of `order`; None when all prices are equal
    (the shape statistics are undefined). Call inside `evaluation_context()`."""
    mean = _mean(values)
    m2 = _central_moment(values, mean, 2)
    if m2 == 0:
        return None
    return m2, _central_moment(values, mean, order)


def skewness(prices: Sequence[Decimal]) -> Decimal | None:
    """Adjusted Fisher-Pearson G1; None for fewer than 3 bids or equal prices."""
    values = _checked(prices)
    n = len(values)
    if n < MIN_BIDS:
        return None
    with evaluation_context():
        moments = _spread_moments(values, 3)
        if moments is None:
            return None
        m2, m3 = moments
        g1 = m3 / (m2 * m2.sqrt())
        return Decimal(n * (n - 1)).sqrt() / (n - 2) * g1


def kurtosis(prices: Sequence[Decimal]) -> Decimal | None:
    """Sample excess kurtosis G2; None for fewer than 4 bids or equal prices."""
    values = _checked(prices)
    n = len(values)
    if n < MIN_BIDS_KURTOSIS:
        return None
    with evaluation_context():
        moments = _spread_moments(values, 4)
        if moments is None:
            return None
        m2, m4 = moments
        return Decimal(n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * m4 / (m2 * m2) - 3 * (n - 1))


def diffp(prices: Sequence[Decimal]) -> Decimal | None:
    """(b2 - b1) / b1; None for fewer than 3 bids."""
    values = _checked(prices)
    if len(values) < MIN_BIDS:
        return None
    with evaluation_context():
        return (values[1] - values[0]) / values[0]


def relative_distance(prices: Sequence[Decimal]) -> Decimal | None:
    """(b2 - b1) / s_losing; None for fewer than 3 bids or equal losing bids."""
    values = _checked(prices)
    if len(values) < MIN_BIDS:
        return None
    with evaluation_context():
        s_losing = sample_sd(values[1:])
        if s_losing == 0:
            return None
        return (values[1] - values[0]) / s_losing


def normalised_relative_distance(prices: Sequence[Decimal]) -> Decimal | None:
    """(n - 1)(b2 - b1) / sum of the gaps; None for fewer than 3 bids or equal prices."""
    values = _checked(prices)
    n = len(values)
    if n < MIN_BIDS:
        return None
    with evaluation_context():
        gaps = sum((b - a for a, b in pairwise(values)), ZERO)
        if gaps == 0:
            return None
        return (n - 1) * (values[1] - values[0]) / gaps


def statistics(prices: Sequence[Decimal]) -> Statistics:
    values = _checked(prices)
    return Statistics(
        n=len(values),
        cv=coefficient_of_variation(values),
        skewness=skewness(values),
        kurtosis=kurtosis(values),
        diffp=diffp(values),
        rd=relative_distance(values),
        rdnor=normalised_relative_distance(values),
    )


def quartiles(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Q1 and Q3 by linear interpolation between order statistics (Hyndman-Fan type 7,
    numpy's and pandas' default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)

    def at(p: Decimal) -> Decimal:
        h = (len(ordered) - 1) * p
        low = int(h)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (h - low) * (ordered[high] - ordered[low])

    with evaluation_context():
        return at(Decimal("0.25")), at(Decimal("0.75"))


def significant_digits(price: Decimal) -> int:
    """Significant digits of a price without its trailing zeros (810000.00 -> 2)."""
    digits = price.normalize().as_tuple().digits
    return len(digits)


# --- flags -----------------------------------------------------------------------------------


def _clip(value: Decimal) -> Decimal:
    return min(ONE, max(ZERO, value))


def _beyond(value: Decimal, threshold: Decimal, *, below: bool) -> Decimal:
    """A score in [0, 1]: how far beyond the threshold, relative to it (1 at 2x or 0)."""
    with evaluation_context():
        scale = abs(threshold) or ONE
        distance = (threshold - value) if below else (value - threshold)
        return _clip(Decimal("0.5") + distance / scale / 2)


def _label(labels: Sequence[str] | None, index: int) -> str:
    return labels[index] if labels is not None else str(index + 1)


def screen_prices(
    prices: Sequence[Decimal],
    *,
    labels: Sequence[str] | None = None,
    ceiling: Decimal | None = None,
    comparable_margins: Sequence[Decimal] | None = None,
    thresholds: ScreenThresholds | None = None,
) -> ScreenResult:
    """The statistics and flags of one competition's prices (every bid opened).

    ``labels`` name the bids in the evidence (default: their position, 1-based, in
    ``prices``); ``ceiling`` enables the near-ceiling screen; ``comparable_margins`` (the
    DIFFP of comparable competitions) enable Cardinal R024 / R058."""
    t = thresholds or ScreenThresholds()
    if labels is not None and len(labels) != len(prices):
        raise ValueError("one label per price")
    _checked(prices)
    if ceiling is not None and (not ceiling.is_finite() or ceiling <= 0):
        raise ValueError("the ceiling price must be positive")
    stats = statistics(prices)
    flags: list[RedFlag] = []
    order = sorted(range(len(prices)), key=lambda i: (prices[i], _label(labels, i)))
    values = [prices[i] for i in order]
    n = len(values)

    counts = Counter(values)
    for price, count in sorted(counts.items()):
        if count > 1:
            bids = [_label(labels, i) for i in order if prices[i] == price]
            flags.append(
                RedFlag(
                    "identical_prices",
                    ONE,
                    "2",
                    {"bids": ", ".join(bids), "price": fmt(price), "count": str(count)},
                )
            )

    def threshold_flag(code: str, value: Decimal | None, limit: Decimal | None, below: bool):
        if value is None or limit is None:
            return
        if (value < limit) if below else (value > limit):
            flags.append(
                RedFlag(
                    code,
                    _beyond(value, limit, below=below),
                    fmt(limit),
                    {"n": str(n), "value": fmt(_six(value)), "threshold": fmt(limit)},
                )
            )

    threshold_flag("low_price_variation", stats.cv, t.cv_below, True)
    low_cv = stats.cv is not None and t.cv_below is not None and stats.cv < t.cv_below
    if not t.rd_needs_low_cv or low_cv:
        threshold_flag("high_relative_distance", stats.rd, t.rd_above, False)
    threshold_flag("high_kurtosis", stats.kurtosis, t.kurtosis_above, False)
    threshold_flag("negative_skewness", stats.skewness, t.skewness_below, True)
    threshold_flag("high_diffp", stats.diffp, t.diffp_above, False)
    threshold_flag("high_rdnor", stats.rdnor, t.rdnor_above, False)

    if stats.diffp is not None and comparable_margins is not None:
        flags.extend(margin_outliers(stats.diffp, comparable_margins, t))

    if n >= MIN_BIDS:
        with evaluation_context():
            gaps = [b - a for a, b in pairwise(values)]
            mean_gap = _mean(gaps)
            tolerance = mean_gap * t.spacing_tolerance
            worst = max(abs(g - mean_gap) for g in gaps)
            if mean_gap > 0 and worst <= tolerance:
                score = _clip(ONE - (worst / tolerance if tolerance else ZERO) / 2)
                flags.append(
                    RedFlag(
                        "equal_price_spacing",
                        score,
                        fmt(t.spacing_tolerance),
                        {
                            "n": str(n),
                            "gap": fmt(mean_gap),
                            "tolerance": fmt(tolerance),
                            "largest_deviation": fmt(worst),
                        },
                    )
                )

    if ceiling is not None and n >= 2:
        with evaluation_context():
            floor = ceiling * (ONE - t.ceiling_margin)
            near = [i for i in order if floor <= prices[i] <= ceiling]
            share = Decimal(len(near)) / n
        if len(near) >= 2 and share >= t.ceiling_share:
            flags.append(
                RedFlag(
                    "bids_near_ceiling",
                    _clip(share),
                    fmt(t.ceiling_margin),
                    {
                        "bids": ", ".join(_label(labels, i) for i in near),
                        "count": str(len(near)),
                        "n": str(n),
                        "ceiling": fmt(ceiling),
                        "floor": fmt(floor),
                    },
                )
            )

    if n >= MIN_BIDS:
        round_bids = [i for i in order if significant_digits(prices[i]) <= t.round_digits]
        with evaluation_context():
            share = Decimal(len(round_bids)) / n
        if share >= t.round_share:
            flags.append(
                RedFlag(
                    "round_number_clustering",
                    _clip(share),
                    fmt(t.round_share),
                    {
                        "bids": ", ".join(_label(labels, i) for i in round_bids),
                        "count": str(len(round_bids)),
                        "n": str(n),
                        "digits": str(t.round_digits),
                    },
                )
            )
    return ScreenResult(stats, flags)


def margin_outliers(
    margin: Decimal, comparable: Sequence[Decimal], thresholds: ScreenThresholds | None = None
) -> list[RedFlag]:
    """Cardinal R024 (margin <= Q1 - k IQR) and R058 (margin >= Q3 + k IQR) among the margins
    (b2 - b1) / b1 of comparable competitions; nothing with too few of them."""
    t = thresholds or ScreenThresholds()
    if len(comparable) < t.min_comparable:
        return []
    q1, q3 = quartiles(comparable)
    with evaluation_context():
        iqr = q3 - q1
        low, high = q1 - t.iqr_factor * iqr, q3 + t.iqr_factor * iqr
        evidence = {
            "margin": fmt(_six(margin)),
            "q1": fmt(_six(q1)),
            "q3": fmt(_six(q3)),
            "comparable": str(len(comparable)),
        }
        if margin <= low:
            score = _clip(Decimal("0.5") + ((low - margin) / iqr / 2 if iqr else Decimal("0.5")))
            return [RedFlag("close_margin_outlier", score, fmt(_six(low)), evidence)]
        if margin >= high:
            score = _clip(Decimal("0.5") + ((margin - high) / iqr / 2 if iqr else Decimal("0.5")))
            return [RedFlag("heavily_undercut_outlier", score, fmt(_six(high)), evidence)]
    return []


def _string(value: object, what: str) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f'{what} must be a decimal string such as "812000.00", not {value!r}')
    return _decimal(value, what)


def read_prices(document: object) -> tuple[list[Decimal], Decimal | None, list[Decimal] | None]:
    """The input of ``python -m evaluation screens``: ``{"prices": ["812000.00", ...],
    "ceiling": "1000000.00" (optional), "comparable_margins": ["0.05", ...] (optional)}``."""
    if not isinstance(document, dict):
        raise ValueError('the file must hold a JSON object {"prices": [...]}')
    unknown = sorted(set(document) - {"prices", "ceiling", "comparable_margins"})
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    raw = document.get("prices")
    if not isinstance(raw, list) or not raw:
        raise ValueError('"prices" must be a non-empty list of decimal strings')
    prices = [_string(v, f"prices[{i}]") for i, v in enumerate(raw)]
    if any(p == 0 for p in prices):
        raise ValueError("every price must be positive")
    ceiling = document.get("ceiling")
    ceiling_value = None if ceiling is None else _string(ceiling, "ceiling")
    if ceiling_value is not None and ceiling_value == 0:
        raise ValueError("the ceiling must be positive")
    margins = document.get("comparable_margins")
    if margins is not None and not isinstance(margins, list):
        raise ValueError('"comparable_margins" must be a list of decimal strings')
    margin_values = (
        None
        if margins is None
        else [_string(v, f"comparable_margins[{i}]") for i, v in enumerate(margins)]
    )
    return prices, ceiling_value, margin_values
