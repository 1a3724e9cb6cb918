"""Ranking of the compliant bids, tie-breaks and the recommended candidates.

Order: total points, highest first (or evaluated price, lowest first, for
lowest_evaluated_price).  Ties: the better price (lower for lowest_wins, higher for
highest_wins), then the higher technical score, then the recorded lot draw (the lower draw
number wins).  Bids still tied after that share a rank and the tie is reported as needing a
draw; when such a tie touches the first three places the candidates cannot be proposed yet.
The result depends on the bids only, never on the order they are listed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from typing import Any

from evaluation.model import Direction

CANDIDATES = 3


@dataclass(frozen=True)
class Contender:
    bid_id: str
    price: Decimal
    technical: Decimal
    total: Decimal | None = None  # points (rounded parts summed)
    evaluated_price: Decimal | None = None  # lowest_evaluated_price
    draw: int | None = None  # recorded lot-draw position, lower wins


@dataclass(frozen=True)
class Tie:
    """Bids level on the main key (total or evaluated price), and how they were separated."""

    bids: tuple[str, ...]  # in final order
    rank: int  # the best rank among them
    on: str  # "total" or "evaluated_price"
    value: Decimal
    resolved_by: tuple[str, ...]  # the tie-breaks that separated bids: price, technical, draw
    needs_draw: tuple[tuple[str, ...], ...]  # groups still level: each needs a lot draw


@dataclass(frozen=True)
class Ranking:
    order: tuple[str, ...]
    ranks: dict[str, int]
    ties: tuple[Tie, ...]
    candidates: tuple[str, ...]  # empty while a draw is needed among the first places
    needs_draw: bool  # an unresolved tie touches the candidates' places


def rank_bids(
    contenders: Sequence[Contender],
    direction: Direction,
    *,
    by_evaluated_price: bool = False,
    candidates: int = CANDIDATES,
) -> Ranking:
    """Rank the contenders; ``by_evaluated_price`` for the lowest_evaluated_price method."""

    def main_value(c: Contender) -> Decimal:
        value = c.evaluated_price if by_evaluated_price else c.total
        if value is None:
            raise ValueError(f"bid {c.bid_id} has nothing to rank by")
        return value

    def main_key(c: Contender) -> Decimal:
        return main_value(c) if by_evaluated_price else main_value(c).copy_negate()

    def price_key(c: Contender) -> Decimal:
        return c.price if direction is Direction.LOWEST_WINS else c.price.copy_negate()

    def tech_key(c: Contender) -> Decimal:
        return c.technical.copy_negate()

    order: list[Contender] = []
    shared: list[list[Contender]] = []  # groups level after every tie-break, draw included
    ties: list[Tie] = []
    for _, level in groupby(sorted(contenders, key=main_key), key=main_key):
        group = list(level)
        resolved_by: list[str] = []
        unresolved: list[list[Contender]] = []
        arranged: list[Contender] = []
        if len({price_key(c) for c in group}) > 1:
            resolved_by.append("price")
        for _, same_price in _groups(group, price_key):
            if len({tech_key(c) for c in same_price}) > 1 and "technical" not in resolved_by:
                resolved_by.append("technical")
            for _, level_group in _groups(same_price, tech_key):
                draws = [c.draw for c in level_group]
                if len(level_group) == 1:
                    arranged += level_group
                elif None not in draws and len(set(draws)) == len(draws):
                    if "draw" not in resolved_by:
                        resolved_by.append("draw")
                    arranged += sorted(level_group, key=lambda c: c.draw or 0)
                else:
                    still = sorted(level_group, key=lambda c: c.bid_id)
                    unresolved.append(still)
                    arranged += still
        start = len(order) + 1
        order += arranged
        shared += unresolved
        if len(group) > 1:
            first = group[0]
            ties.append(
                Tie(
                    bids=tuple(c.bid_id for c in arranged),
                    rank=start,
                    on="evaluated_price" if by_evaluated_price else "total",
                    value=main_value(first),
                    resolved_by=tuple(resolved_by),
                    needs_draw=tuple(tuple(c.bid_id for c in u) for u in unresolved),
                )
            )
    ranks: dict[str, int] = {}
    position = {c.bid_id: i + 1 for i, c in enumerate(order)}
    for c in order:
        ranks[c.bid_id] = position[c.bid_id]
    for group in shared:
        best = min(position[c.bid_id] for c in group)
        for c in group:
            ranks[c.bid_id] = best
    blocking = any(ranks[g[0].bid_id] <= candidates for g in shared)
    return Ranking(
        order=tuple(c.bid_id for c in order),
        ranks=ranks,
        ties=tuple(ties),
        candidates=() if blocking else tuple(c.bid_id for c in order[:candidates]),
        needs_draw=blocking,
    )


def _groups(
    items: Sequence[Contender], key: Callable[[Contender], Any]
) -> list[tuple[Any, list[Contender]]]:
    return [(k, list(g)) for k, g in groupby(sorted(items, key=key), key=key)]
