"""Price-pattern screens for supervisors (red flags, not verdicts).

Collusion is presumed, among other signs, when bids are abnormally identical or regularly
spaced (implementing regulations art. 40).  These screens look only at the prices of one
competition: a single bid, identical prices, a low coefficient of variation (population
standard deviation / mean) and equally spaced prices.  They are for the supervision
dashboard and are not part of the scoring file, which panels and the public see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby, pairwise

from evaluation.decimals import ZERO, evaluation_context, fmt
from evaluation.messages import Flag, Severity


@dataclass(frozen=True)
class ScreenThresholds:
    # A CV under 2 % among 3 or more bids is unusually tight for independent pricing.
    low_cv: Decimal = Decimal("0.02")
    # Gaps between consecutive sorted prices count as equal when they differ from their mean
    # by at most this fraction of it.
    spacing_tolerance: Decimal = Decimal("0.01")
    min_bids_for_patterns: int = 3


def coefficient_of_variation(prices: list[Decimal]) -> Decimal:
    """Population standard deviation divided by the mean (full precision)."""
    if not prices:
        raise ValueError("no prices")
    with evaluation_context():
        n = len(prices)
        mean = sum(prices, ZERO) / n
        if mean == 0:
            raise ValueError("the mean price is zero")
        variance = sum(((p - mean) ** 2 for p in prices), ZERO) / n
        return variance.sqrt() / mean


def screen_prices(
    prices: Mapping[str, Decimal], thresholds: ScreenThresholds | None = None
) -> list[Flag]:
    """Warnings about the price pattern of one competition's bids (all bids received)."""
    thresholds = thresholds or ScreenThresholds()
    flags: list[Flag] = []
    if len(prices) == 1:
        (bid,) = prices
        return [Flag("single_bid", Severity.WARNING, {"bid": bid})]
    ordered = sorted(prices.items(), key=lambda item: (item[1], item[0]))
    for price, group in groupby(ordered, key=lambda item: item[1]):
        bids = [bid for bid, _ in group]
        if len(bids) > 1:
            flags.append(
                Flag(
                    "identical_prices",
                    Severity.WARNING,
                    {"bid": bids[0], "bids": ", ".join(bids), "price": fmt(price)},
                )
            )
    values = [p for _, p in ordered]
    n = len(values)
    if n < thresholds.min_bids_for_patterns:
        return flags
    cv = coefficient_of_variation(values)
    if cv < thresholds.low_cv:
        flags.append(
            Flag(
                "low_price_variation",
                Severity.WARNING,
                {"n": str(n), "cv": fmt(cv), "threshold": fmt(thresholds.low_cv)},
            )
        )
    with evaluation_context():
        gaps = [b - a for a, b in pairwise(values)]
        mean_gap = sum(gaps, ZERO) / len(gaps)
        tolerance = mean_gap * thresholds.spacing_tolerance
        equal = mean_gap > 0 and all(abs(g - mean_gap) <= tolerance for g in gaps)
    if equal:
        flags.append(
            Flag(
                "equal_price_spacing",
                Severity.WARNING,
                {"n": str(n), "gap": fmt(mean_gap), "tolerance": fmt(tolerance)},
            )
        )
    return flags
