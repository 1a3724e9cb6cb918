"""Price scoring: the four methods of DESIGN.md ("Price-scoring methods").

Each function takes the valid prices (compliant bids only) keyed by bid id and returns a
``PriceEvaluation`` holding the benchmark and every intermediate value, so the score can be
checked by hand.  Benchmarks, means and deviations keep full precision (context precision
28); each bid's price score is rounded once to 2 places, ROUND_HALF_UP.

- ``lowest_price_benchmark``: B = lowest price; score = max_points × B / price.
- ``average_benchmark``: sort the prices; with n < drop_highest_from use all; from that n drop
  the highest; from n >= drop_lowest_from drop the lowest too.  B = mean × (1 + k);
  D = (price − B) / B × 100; score = max_points − above_per_pct × D when D > 0, else
  max_points − below_per_pct × |D|; never below 0.
- ``highest_price``: B = highest price; score = max_points × price / B.
- ``lowest_evaluated_price``: no points; evaluated price = price + the bid's adjustments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from evaluation.decimals import HUNDRED, ZERO, evaluation_context, fmt, round2
from evaluation.messages import Flag, Severity
from evaluation.model import (
    AbnormallyLowRule,
    Adjustment,
    AverageBenchmarkParams,
    PriceMethod,
    PriceRule,
)


@dataclass(frozen=True)
class PricedBid:
    bid_id: str
    price: Decimal
    deviation: Decimal | None = None  # D, average_benchmark only
    raw_score: Decimal | None = None  # before the one rounding
    score: Decimal | None = None  # rounded to 2 places; None for lowest_evaluated_price
    adjustments: Decimal | None = None  # sum of adjustments, lowest_evaluated_price only
    evaluated_price: Decimal | None = None  # lowest_evaluated_price only


@dataclass(frozen=True)
class DroppedPrice:
    bid_id: str
    price: Decimal
    position: str  # "highest" or "lowest"


@dataclass(frozen=True)
class PriceEvaluation:
    method: PriceMethod
    max_points: Decimal
    valid_prices: tuple[tuple[str, Decimal], ...]  # (bid id, price), ascending
    bids: tuple[PricedBid, ...]  # in the order the prices were given
    benchmark: Decimal | None = None
    # average_benchmark only:
    params: AverageBenchmarkParams | None = None
    dropped: tuple[DroppedPrice, ...] = ()
    used_prices: tuple[Decimal, ...] = ()
    total: Decimal | None = None
    mean: Decimal | None = None

    @cached_property
    def by_bid(self) -> dict[str, PricedBid]:
        return {b.bid_id: b for b in self.bids}


def _sorted_prices(prices: Mapping[str, Decimal]) -> tuple[tuple[str, Decimal], ...]:
    if not prices:
        raise ValueError("no valid price to score")
    return tuple(sorted(prices.items(), key=lambda item: (item[1], item[0])))


def lowest_price_benchmark(prices: Mapping[str, Decimal], max_points: Decimal) -> PriceEvaluation:
    """B = the lowest valid price; score = max_points × B / price."""
    valid = _sorted_prices(prices)
    with evaluation_context():
        benchmark = valid[0][1]
        bids = tuple(_ratio_score(bid, p, max_points * benchmark / p) for bid, p in prices.items())
    return PriceEvaluation(
        PriceMethod.LOWEST_PRICE_BENCHMARK, max_points, valid, bids, benchmark=benchmark
    )


def highest_price(prices: Mapping[str, Decimal], max_points: Decimal) -> PriceEvaluation:
    """B = the highest valid price; score = max_points × price / B."""
    valid = _sorted_prices(prices)
    with evaluation_context():
        benchmark = valid[-1][1]
        bids = tuple(_ratio_score(bid, p, max_points * p / benchmark) for bid, p in prices.items())
    return PriceEvaluation(PriceMethod.HIGHEST_PRICE, max_points, valid, bids, benchmark=benchmark)


def _ratio_score(bid_id: str, price: Decimal, raw: Decimal) -> PricedBid:
    return PricedBid(bid_id, price, raw_score=raw, score=round2(raw))


def trim_for_average(
    valid: Sequence[tuple[str, Decimal]], params: AverageBenchmarkParams
) -> tuple[list[tuple[str, Decimal]], list[DroppedPrice]]:
    """The prices the average uses and those dropped, from prices sorted ascending.

    With n valid prices: n < drop_highest_from uses all; n >= drop_highest_from drops the
    (one) highest; n >= drop_lowest_from drops the (one) lowest too.
    """
    n = len(valid)
    used = list(valid)
    dropped: list[DroppedPrice] = []
    if n >= params.drop_highest_from:
        bid, price = used.pop()
        dropped.append(DroppedPrice(bid, price, "highest"))
    if n >= params.drop_lowest_from:
        bid, price = used.pop(0)
        dropped.append(DroppedPrice(bid, price, "lowest"))
    return used, dropped


def average_benchmark(
    prices: Mapping[str, Decimal],
    max_points: Decimal,
    params: AverageBenchmarkParams | None = None,
) -> PriceEvaluation:
    """B = (trimmed) mean × (1 + k); points lost per percent of deviation from B."""
    params = params or AverageBenchmarkParams()
    valid = _sorted_prices(prices)
    used, dropped = trim_for_average(valid, params)
    with evaluation_context():
        total = sum((p for _, p in used), ZERO)
        mean = total / len(used)
        benchmark = mean * (1 + params.k)
        bids = []
        for bid, price in prices.items():
            # (price − B) × 100 / B: the design's (price − B) / B × 100 with a single rounding.
            deviation = (price - benchmark) * HUNDRED / benchmark
            if deviation > 0:
                raw = max_points - params.above_per_pct * deviation
            else:
                raw = max_points - params.below_per_pct * -deviation
            raw = max(raw, ZERO)
            bids.append(PricedBid(bid, price, deviation, raw, round2(raw)))
    return PriceEvaluation(
        PriceMethod.AVERAGE_BENCHMARK,
        max_points,
        valid,
        tuple(bids),
        benchmark=benchmark,
        params=params,
        dropped=tuple(dropped),
        used_prices=tuple(p for _, p in used),
        total=total,
        mean=mean,
    )


def lowest_evaluated_price(
    prices: Mapping[str, Decimal],
    adjustments: Mapping[str, Sequence[Adjustment]] | None = None,
) -> PriceEvaluation:
    """No points: each bid's evaluated price = price + the sum of its adjustments."""
    adjustments = adjustments or {}
    valid = _sorted_prices(prices)
    with evaluation_context():
        bids = []
        for bid, price in prices.items():
            adjust = sum((a.amount for a in adjustments.get(bid, ())), ZERO)
            bids.append(PricedBid(bid, price, adjustments=adjust, evaluated_price=price + adjust))
    return PriceEvaluation(PriceMethod.LOWEST_EVALUATED_PRICE, ZERO, valid, tuple(bids))


def score_prices(
    rule: PriceRule,
    prices: Mapping[str, Decimal],
    adjustments: Mapping[str, Sequence[Adjustment]] | None = None,
) -> PriceEvaluation:
    """Score the valid prices (compliant bids only) with the tender's price rule."""
    if rule.method is PriceMethod.LOWEST_PRICE_BENCHMARK:
        return lowest_price_benchmark(prices, rule.max_points)
    if rule.method is PriceMethod.AVERAGE_BENCHMARK:
        return average_benchmark(prices, rule.max_points, rule.average)
    if rule.method is PriceMethod.HIGHEST_PRICE:
        return highest_price(prices, rule.max_points)
    return lowest_evaluated_price(prices, adjustments)


def abnormally_low_flags(
    prices: Mapping[str, Decimal], rule: AbnormallyLowRule | None = None
) -> list[Flag]:
    """Warnings for compliant prices far below the others (procurement).

    A price is abnormally low when it is ``below_mean_of_others_pct`` % or more below the
    mean of the other compliant prices, or ``below_next_lowest_pct`` % or more below the next
    price up (the lowest of the other prices that are not below it).  Percentages keep full
    precision.  The bidder is then asked to justify its price; the flag decides nothing.
    """
    rule = rule or AbnormallyLowRule()
    valid = _sorted_prices(prices) if prices else ()
    flags: list[Flag] = []
    if len(valid) < 2:
        return flags
    with evaluation_context():
        total = sum((p for _, p in valid), ZERO)
        for i, (bid, price) in enumerate(valid):
            if rule.below_mean_of_others_pct is not None:
                others = (total - price) / (len(valid) - 1)
                pct = (others - price) * HUNDRED / others
                if pct >= rule.below_mean_of_others_pct:
                    flags.append(
                        Flag(
                            "abnormally_low_vs_mean",
                            Severity.WARNING,
                            {
                                "bid": bid,
                                "price": fmt(price),
                                "mean_of_others": fmt(others),
                                "pct_below": fmt(pct),
                                "threshold": fmt(rule.below_mean_of_others_pct),
                            },
                        )
                    )
            if rule.below_next_lowest_pct is not None and i + 1 < len(valid):
                next_price = valid[i + 1][1]
                pct = (next_price - price) * HUNDRED / next_price
                if pct >= rule.below_next_lowest_pct:
                    flags.append(
                        Flag(
                            "abnormally_low_vs_next",
                            Severity.WARNING,
                            {
                                "bid": bid,
                                "price": fmt(price),
                                "next_price": fmt(next_price),
                                "pct_below": fmt(pct),
                                "threshold": fmt(rule.below_next_lowest_pct),
                            },
                        )
                    )
    return flags
