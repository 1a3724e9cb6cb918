"""The cross-lot award: who wins each lot when one company may win only ``limit`` lots.

A tender divided into lots runs one competition per lot; each lot's ranking (compliant
bidders only, ties already resolved, lot draws included) is the input here.  When a company
tops more lots than the tender lets it win (兼投不兼中), this procedure decides which lots it
wins and who wins the others.  It is pure, deterministic and replayable: the input and the
result (with a step-by-step trace) serialise to JSON (``award_to_json``), and ``replay``
recomputes a recorded award from its input.

Every rule produces a **limit-consistent** award:

- no company wins more than ``limit`` lots;
- a lot's winner is never ranked below a bidder (of that lot) whose company won fewer than
  ``limit`` lots in the award; in particular a lot is left without a winner only when every
  compliant bidder of that lot belongs to a company that won ``limit`` lots.

The rules (``lot_order``, ``max_total_score``, ``min_total_price``):

- ``lot_order``: lots in the tender's order; each goes to its best-ranked bidder whose
  company has not yet won ``limit`` lots (greedy, O(number of bids)).  This is the award
  whose vector of winners' ranks, read in lot order, is the smallest: no other award within
  the limit gives an earlier lot a better-ranked winner.
- ``max_total_score`` / ``min_total_price``: among the limit-consistent awards, the one
  awarding the most lots, then with the highest sum of the winners' total scores (or the
  lowest sum of their prices), then (tie-break) the smallest vector of winners' ranks in
  lot order, as for ``lot_order``.  The result is unique.

  - ``max_total_score``, and ``min_total_price`` when every lot's ranking is in order of
    price (lowest_evaluated_price): the best award over *every* award within the limit is
    limit-consistent, so one minimum-cost flow finds it exactly (polynomial: at most one
    augmenting path per lot, each a Bellman-Ford queue over lots + companies nodes and
    bids edges; exact integer costs).  ``search.tie`` is another award within the limit
    reaching the same number of lots and objective, when one exists (a second flow with the
    rank preference reversed).
  - ``min_total_price`` otherwise: ranks do not follow prices, and the best award is looked
    for among the limit-consistent ones only, by exact dynamic programming over the lots in
    order (memoised on the wins of the companies that can still reach the limit and on the
    companies passed over under their limit, which must reach it).  The state count is
    exponential in the worst case (up to lots x (limit + 1)^companies x 2^companies); the
    search stops after ``max_states`` states (default 20,000): the award is then the
    ``lot_order`` award, and the trace says so (``search.complete`` false,
    ``search.fallback`` "lot_order").  ``search.tie`` is another limit-consistent award
    reaching the same number of lots and total price, when one exists.

Without a limit (``limit`` None) every lot goes to its first-ranked bidder, whatever the rule.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any

from evaluation.decimals import ZERO, evaluation_context, fmt, parse_decimal

FORMAT = "fairbid-lot-award/1"
DEFAULT_MAX_STATES = 20_000


class AwardRule(StrEnum):
    LOT_ORDER = "lot_order"
    MAX_TOTAL_SCORE = "max_total_score"
    MIN_TOTAL_PRICE = "min_total_price"


class LotAwardError(ValueError):
    """The input cannot be used (the message says why)."""


@dataclass(frozen=True)
class Ranked:
    """One compliant bidder of a lot: its company, total score and price."""

    company: str
    total: Decimal | None  # points; None under lowest_evaluated_price (no points)
    price: Decimal  # the price the ranking uses (the evaluated price where the method says so)


@dataclass(frozen=True)
class LotRanking:
    lot: str
    ranking: tuple[Ranked, ...]  # best first, ties already resolved


@dataclass(frozen=True)
class AwardInput:
    lots: tuple[LotRanking, ...]  # in the tender's lot order
    limit: int | None  # most lots one company may win; None: no limit
    rule: AwardRule


@dataclass(frozen=True)
class PassedOver:
    company: str
    rank: int
    won: tuple[str, ...]  # the lots that company wins in the award (``limit`` of them)


@dataclass(frozen=True)
class LotAward:
    lot: str
    winner: str | None
    rank: int | None  # the winner's rank in its lot (1 = first)
    passed_over: tuple[PassedOver, ...]  # better-ranked bidders, all at their limit


@dataclass(frozen=True)
class Search:
    method: str  # "flow" (exact, polynomial) or "states" (exact search with a budget)
    states: int  # distinct search states computed
    complete: bool
    fallback: str | None  # "lot_order" when the search stopped at max_states
    awarded: int
    objective: Decimal  # total score (max_total_score) or total price (min_total_price)
    tie: tuple[int | None, ...] | None  # another award with the same objective (ranks per lot)


@dataclass(frozen=True)
class Award:
    lots: tuple[LotAward, ...]
    search: Search | None  # None for lot_order and without a limit

    def winners(self) -> dict[str, str | None]:
        return {a.lot: a.winner for a in self.lots}


# -- the procedure ------------------------------------------------------------------------


def award_lots(
    lots: Sequence[LotRanking],
    limit: int | None,
    rule: AwardRule | str,
    *,
    max_states: int = DEFAULT_MAX_STATES,
) -> Award:
    """Decide the winner of every lot (see the module's docstring for the rules)."""
    data = _checked(AwardInput(tuple(lots), limit, AwardRule(rule)))
    if data.limit is None:
        choice: tuple[int | None, ...] = tuple(0 if lot.ranking else None for lot in data.lots)
        return _award(data, choice, None)
    greedy = _lot_order(data, data.limit)
    if data.rule is AwardRule.LOT_ORDER:
        return _award(data, greedy, None)
    if data.rule is AwardRule.MAX_TOTAL_SCORE or _prices_follow_ranks(data):
        return _award(data, *_by_flow(data, data.limit))
    return _award(data, *_search(data, data.limit, greedy, max_states))


def _scaled(value: Decimal, places: int) -> int:
    """``value`` × 10^places as an exact integer (``value`` has at most ``places`` decimals)."""
    sign, digits, exponent = value.as_tuple()
    number = int("".join(map(str, digits)) or "0") * 10 ** (int(exponent) + places)
    return -number if sign else number


def _prices_follow_ranks(data: AwardInput) -> bool:
    return all(a.price <= b.price for lot in data.lots for a, b in pairwise(lot.ranking))


def _by_flow(data: AwardInput, limit: int) -> tuple[tuple[int | None, ...], Search]:
    """The award with the most lots, then the highest total score (or lowest total price),
    then the smallest rank vector in lot order, over every award within the limit: one
    minimum-cost flow.  Used for max_total_score, and for min_total_price when every lot's
    ranking is in order of price (lowest_evaluated_price).

    Such an award is limit-consistent (replacing a winner by a better-ranked bidder whose
    company is under its limit never worsens the objective, as ranks follow the total score
    (or the price), and improves the rank vector; giving an empty lot to a bidder under its
    limit awards one more lot), so it is also the best limit-consistent award.  The
    lexicographic objective is one integer cost per (lot, bidder) edge: -M per lot awarded,
    then the scaled score, then the rank in base B positioned by lot order; every term
    outweighs all the later ones, so the optimum is unique.  The tie check solves again
    with the rank preference reversed: a different optimum means another award within the
    limit reaches the same lots and objective.
    """
    first = _flow(data, limit, prefer_better_ranks=True)
    other = _flow(data, limit, prefer_better_ranks=False)
    count, value = _objective(data, first)
    tie = None if other == first else other
    return first, Search("flow", 0, True, None, count, value, tie)


def _flow(data: AwardInput, limit: int, *, prefer_better_ranks: bool) -> tuple[int | None, ...]:
    n = len(data.lots)
    gains = [
        [_value(data, i, p) for p in range(len(lot.ranking))] for i, lot in enumerate(data.lots)
    ]
    places = max((max(0, -int(v.as_tuple().exponent)) for lot in gains for v in lot), default=0)
    scores = [[_scaled(v, places) for v in lot] for lot in gains]
    base = max((len(lot.ranking) for lot in data.lots), default=0) + 1
    rank_span = base**n
    spread = sum(max((abs(v) for v in lot), default=0) for lot in scores)
    per_lot = (2 * spread + 2) * rank_span

    companies = sorted({r.company for lot in data.lots for r in lot.ranking})
    # nodes: 0 source, 1 sink, 2.. lots, then companies
    company_node = {c: 2 + n + i for i, c in enumerate(companies)}
    size = 2 + n + len(companies)
    graph: list[list[int]] = [[] for _ in range(size)]
    to: list[int] = []
    cap: list[int] = []
    cost: list[int] = []

    def edge(a: int, b: int, capacity: int, price: int) -> int:
        graph[a].append(len(to))
        to.append(b)
        cap.append(capacity)
        cost.append(price)
        graph[b].append(len(to))
        to.append(a)
        cap.append(0)
        cost.append(-price)
        return len(to) - 2

    picks: dict[int, tuple[int, int]] = {}
    for i, lot in enumerate(data.lots):
        edge(0, 2 + i, 1, 0)
        weight = base ** (n - 1 - i)
        for p, r in enumerate(lot.ranking):
            rank_term = (p - (base - 1) if prefer_better_ranks else base - 1 - p) * weight
            e = edge(
                2 + i, company_node[r.company], 1, -per_lot - scores[i][p] * rank_span + rank_term
            )
            picks[e] = (i, p)
    for c in companies:
        edge(company_node[c], 1, limit, 0)

    while True:  # successive shortest paths (Bellman-Ford queue; no negative cycle arises)
        dist: list[int | None] = [None] * size
        via: list[int] = [-1] * size
        dist[0] = 0
        queue = deque([0])
        queued = [False] * size
        queued[0] = True
        while queue:
            a = queue.popleft()
            queued[a] = False
            da = dist[a] or 0  # a queued node has a distance
            for e in graph[a]:
                if cap[e] > 0:
                    b = to[e]
                    nd = da + cost[e]
                    db = dist[b]
                    if db is None or nd < db:
                        dist[b] = nd
                        via[b] = e
                        if not queued[b]:
                            queued[b] = True
                            queue.append(b)
        if dist[1] is None or dist[1] >= 0:
            break
        node = 1
        while node != 0:
            e = via[node]
            cap[e] -= 1
            cap[e ^ 1] += 1
            node = to[e ^ 1]
    choice: list[int | None] = [None] * n
    for e, (i, p) in picks.items():
        if cap[e] == 0:
            choice[i] = p
    return tuple(choice)


def _checked(data: AwardInput) -> AwardInput:
    if data.limit is not None and (isinstance(data.limit, bool) or data.limit < 1):
        raise LotAwardError(f"the limit must be a whole number of lots, 1 or more: {data.limit}")
    refs = [lot.lot for lot in data.lots]
    if len(set(refs)) != len(refs):
        raise LotAwardError("each lot reference may appear once")
    for lot in data.lots:
        companies = [r.company for r in lot.ranking]
        if len(set(companies)) != len(companies):
            raise LotAwardError(f"lot {lot.lot}: a company appears more than once")
        totals = [r.total for r in lot.ranking if r.total is not None]
        if any(a < b for a, b in pairwise(totals)):
            raise LotAwardError(f"lot {lot.lot}: the ranking is not in order of total score")
        for r in lot.ranking:
            if not r.price.is_finite() or (r.total is not None and not r.total.is_finite()):
                raise LotAwardError(
                    f"lot {lot.lot}: {r.company} has a price or total that is not a number"
                )
            if data.rule is AwardRule.MAX_TOTAL_SCORE and r.total is None:
                raise LotAwardError(
                    f"lot {lot.lot}: {r.company} has no total score (max_total_score needs one)"
                )
    return data


def _lot_order(data: AwardInput, limit: int) -> tuple[int | None, ...]:
    wins: dict[str, int] = {}
    choice: list[int | None] = []
    for lot in data.lots:
        pick = next((i for i, r in enumerate(lot.ranking) if wins.get(r.company, 0) < limit), None)
        if pick is not None:
            company = lot.ranking[pick].company
            wins[company] = wins.get(company, 0) + 1
        choice.append(pick)
    return tuple(choice)


def _value(data: AwardInput, lot: int, pick: int) -> Decimal:
    r = data.lots[lot].ranking[pick]
    if data.rule is AwardRule.MAX_TOTAL_SCORE and r.total is not None:  # checked: never None
        return r.total
    return r.price.copy_negate()  # minimising the price = maximising its negation


def _objective(data: AwardInput, choice: Sequence[int | None]) -> tuple[int, Decimal]:
    with evaluation_context():
        total = sum(
            (_value(data, lot, pick) for lot, pick in enumerate(choice) if pick is not None), ZERO
        )
    return sum(1 for pick in choice if pick is not None), total


_Completion = tuple[int, Decimal, tuple[int | None, ...], tuple[int | None, ...] | None]


def _search(
    data: AwardInput, limit: int, greedy: tuple[int | None, ...], max_states: int
) -> tuple[tuple[int | None, ...], Search]:
    """Exact search over the limit-consistent awards: dynamic programming over the lots in
    order, memoised on what decides the rest (the lot reached, the wins of the companies that
    bid in a later lot, and which companies were passed over under their limit and must
    still reach it).  A completion is compared on (lots awarded, objective), then on its
    vector of ranks (smaller first, "no winner" last); each state also keeps one other
    completion reaching the same (lots awarded, objective), if any, for the trace."""
    n = len(data.lots)
    zones, saturable = _zones(data, limit)
    bids_after: dict[str, list[int]] = {r.company: [0] * (n + 1) for z in zones for r in z}
    for i in range(n - 1, -1, -1):  # lots from i on whose zone holds the company
        present = {r.company for r in zones[i]}
        for company, counts in bids_after.items():
            counts[i] = counts[i + 1] + (1 if company in present else 0)
    values = [[_value(data, i, p) for p in range(len(zone))] for i, zone in enumerate(zones)]

    wins: dict[str, int] = {}
    pending: set[str] = set()  # passed over while under the limit: must end at the limit
    memo: dict[tuple[Any, ...], _Completion | None] = {}

    class Exhausted(Exception):
        pass

    def better(a: _Completion, b: _Completion) -> bool:
        if (a[0], a[1]) != (b[0], b[1]):
            return (a[0], a[1]) > (b[0], b[1])
        return _ranks_key(a[2]) < _ranks_key(b[2])

    def solve(lot: int) -> _Completion | None:
        owed = 0
        for company in pending:
            have = wins.get(company, 0)
            if have < limit:
                if have + bids_after[company][lot] < limit:
                    return None
                owed += limit - have
        if owed > n - lot:
            return None
        if lot == n:
            return (0, ZERO, (), None)
        key = (
            lot,
            tuple(
                sorted(
                    (c, w) for c, w in wins.items() if w and c in saturable and bids_after[c][lot]
                )
            ),
            tuple(sorted(c for c in pending if wins.get(c, 0) < limit)),
        )
        if key in memo:
            return memo[key]
        if len(memo) >= max_states:
            raise Exhausted
        options: list[_Completion] = []
        added: list[str] = []
        ranking = zones[lot]
        blocked = False
        for pick, r in enumerate(ranking):
            have = wins.get(r.company, 0)
            if have >= limit:
                continue  # at its limit: passing it over needs nothing more
            wins[r.company] = have + 1
            rest = solve(lot + 1)
            wins[r.company] = have
            if rest is not None:
                with evaluation_context():
                    value = rest[1] + values[lot][pick]
                alt = None if rest[3] is None else (pick, *rest[3])
                options.append((rest[0] + 1, value, (pick, *rest[2]), alt))
            if r.company not in pending:  # passed over: must still reach the limit
                pending.add(r.company)
                added.append(r.company)
            if r.company not in saturable or have + bids_after[r.company][lot + 1] < limit:
                blocked = True
                break
        if not blocked:
            rest = solve(lot + 1)
            if rest is not None:
                alt = None if rest[3] is None else (None, *rest[3])
                options.append((rest[0], rest[1], (None, *rest[2]), alt))
        pending.difference_update(added)
        best: _Completion | None = None
        for option in options:
            if best is None or better(option, best):
                best = option
        if best is not None and best[3] is None:
            level = [o for o in options if (o[0], o[1]) == (best[0], best[1]) and o is not best]
            if level:
                best = (best[0], best[1], best[2], min(level, key=lambda o: _ranks_key(o[2]))[2])
        memo[key] = best
        return best

    try:
        found = solve(0)
    except Exhausted:
        count, value = _objective(data, greedy)
        return greedy, Search(
            "states", max_states, False, AwardRule.LOT_ORDER.value, count, value, None
        )
    if found is None:  # cannot happen: the lot_order award is limit-consistent
        raise LotAwardError("no limit-consistent award found")
    return found[2], Search("states", len(memo), True, None, found[0], found[1], found[3])


def _zones(data: AwardInput, limit: int) -> tuple[list[tuple[Ranked, ...]], set[str]]:
    """Per lot, the bidders that can win it in some limit-consistent award, and the companies
    that can end at their limit.

    A company can end at its limit only if it can win ``limit`` lots; a lot's winner is
    ranked below only companies at their limit, so it lies in the lot's prefix up to its
    first bidder whose company cannot reach the limit.  Starting from the companies bidding
    in ``limit`` lots or more, narrow both until nothing changes (each step only removes).
    """
    able = {
        company
        for company in {r.company for lot in data.lots for r in lot.ranking}
        if sum(1 for lot in data.lots if any(r.company == company for r in lot.ranking)) >= limit
    }
    while True:
        zones: list[tuple[Ranked, ...]] = []
        for lot in data.lots:
            end = next((i for i, r in enumerate(lot.ranking) if r.company not in able), None)
            zones.append(lot.ranking if end is None else lot.ranking[: end + 1])
        appears: dict[str, int] = {}
        for zone in zones:
            for r in zone:
                appears[r.company] = appears.get(r.company, 0) + 1
        narrowed = {c for c in able if appears.get(c, 0) >= limit}
        if narrowed == able:
            return zones, able
        able = narrowed


def _ranks_key(choice: Sequence[int | None]) -> tuple[tuple[bool, int], ...]:
    """Winners' ranks in lot order, "no winner" after every rank."""
    return tuple((pick is None, pick or 0) for pick in choice)


def _award(data: AwardInput, choice: Sequence[int | None], search: Search | None) -> Award:
    won: dict[str, list[str]] = {}
    for lot, pick in zip(data.lots, choice, strict=True):
        if pick is not None:
            won.setdefault(lot.ranking[pick].company, []).append(lot.lot)
    lots: list[LotAward] = []
    for lot, pick in zip(data.lots, choice, strict=True):
        above = lot.ranking if pick is None else lot.ranking[:pick]
        passed = tuple(
            PassedOver(r.company, i + 1, tuple(won.get(r.company, ()))) for i, r in enumerate(above)
        )
        winner = None if pick is None else lot.ranking[pick].company
        lots.append(LotAward(lot.lot, winner, None if pick is None else pick + 1, passed))
    if search is not None and data.rule is AwardRule.MIN_TOTAL_PRICE:
        search = Search(
            search.method,
            search.states,
            search.complete,
            search.fallback,
            search.awarded,
            search.objective.copy_negate(),
            search.tie,
        )
    return Award(tuple(lots), search)


def replay(doc: Mapping[str, Any], *, max_states: int = DEFAULT_MAX_STATES) -> list[str]:
    """Recompute a recorded award (``award_to_json``'s output) from its input; the list of
    differences (empty: the recorded result is the procedure's)."""
    data = input_from_json(doc)
    recorded = doc.get("result")
    if not isinstance(recorded, Mapping):
        return ["the document has no recorded result"]
    again = result_to_json(award_lots(data.lots, data.limit, data.rule, max_states=max_states))
    differences: list[str] = []
    for key in sorted(set(again) | set(recorded)):
        if again.get(key) != recorded.get(key):
            differences.append(
                f"result.{key}: recorded {recorded.get(key)!r}, recomputed {again.get(key)!r}"
            )
    return differences


# -- JSON ---------------------------------------------------------------------------------


def input_to_json(data: AwardInput) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "limit": data.limit,
        "rule": data.rule.value,
        "lots": [
            {
                "lot": lot.lot,
                "ranking": [
                    {
                        "company": r.company,
                        "total": None if r.total is None else fmt(r.total),
                        "price": fmt(r.price),
                    }
                    for r in lot.ranking
                ],
            }
            for lot in data.lots
        ],
    }


def result_to_json(award: Award) -> dict[str, Any]:
    search = award.search
    return {
        "lots": [
            {
                "lot": a.lot,
                "winner": a.winner,
                "rank": a.rank,
                "passed_over": [
                    {
                        "company": p.company,
                        "rank": p.rank,
                        "reason": "limit_reached",
                        "won": list(p.won),
                    }
                    for p in a.passed_over
                ],
            }
            for a in award.lots
        ],
        "search": None
        if search is None
        else {
            "method": search.method,
            "states": search.states,
            "complete": search.complete,
            "fallback": search.fallback,
            "awarded": search.awarded,
            "objective": fmt(search.objective),
            "tie": None
            if search.tie is None
            else {
                "ranks": [None if p is None else p + 1 for p in search.tie],
                "resolved_by": "rank_order",
            },
        },
    }


def award_to_json(data: AwardInput, award: Award) -> dict[str, Any]:
    """The record of the award step: its input and its result."""
    return {**input_to_json(data), "result": result_to_json(award)}


def input_from_json(doc: Mapping[str, Any]) -> AwardInput:
    """Parse the input part of an award document; ``LotAwardError`` naming what is wrong."""
    try:
        if doc.get("format") != FORMAT:
            raise LotAwardError(f"format must be {FORMAT!r}")
        limit = doc["limit"]
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise LotAwardError("limit must be a whole number or null")
        lots = tuple(
            LotRanking(
                str(lot["lot"]),
                tuple(
                    Ranked(
                        str(r["company"]),
                        None if r["total"] is None else parse_decimal(r["total"]),
                        parse_decimal(r["price"]),
                    )
                    for r in lot["ranking"]
                ),
            )
            for lot in doc["lots"]
        )
        rule = AwardRule(doc["rule"])
    except LotAwardError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LotAwardError(f"not a lot-award document: {exc}") from exc
    return _checked(AwardInput(lots, limit, rule))


# -- the evaluation of a tender divided into lots ------------------------------------------

# One scoring file per lot, in lot order, and the award made from their rankings:
# {"format", "input_sha256", "lots": [{"lot": REF, "scoring_file": {...}}], "award": {...}}.
LOTS_FORMAT = "fairbid-lots-evaluation/1"


def lot_ranking_of(reference: str, scored: Mapping[str, Any]) -> LotRanking:
    """A lot's ranking as the award reads it, from the lot's scored file: the compliant bids
    best first (the file's ``result.ranking``), each with its bidder id, total score (None
    without points) and the price the ranking uses (the evaluated price when there is one).
    Raises ``LotAwardError`` when a ranked bid has no price."""
    result = scored["result"]
    bids = {bid["id"]: bid for bid in result["bids"]}
    ranked = []
    for entry in result["ranking"]:
        bid = bids.get(entry["bid"])
        price = None if bid is None else (bid.get("evaluated_price") or bid.get("price"))
        if price is None:
            raise LotAwardError(f"lot {reference}: ranked bid {entry['bid']} has no price")
        total = bid.get("total")
        ranked.append(
            Ranked(
                entry["bid"], None if total is None else parse_decimal(total), parse_decimal(price)
            )
        )
    return LotRanking(reference, tuple(ranked))


def verify_lots(doc: Mapping[str, Any]) -> list[str]:
    """Check an evaluation of several lots (``LOTS_FORMAT``): recompute every lot's scoring
    file, check that the award's input is the lots' rankings (same lots, same order) and
    replay the award. The list of differences (empty: verified). Raises
    ``ScoringFileError`` for a lot file that is not a valid scoring file."""
    from evaluation.scoring_file import verify

    differences: list[str] = []
    lots = doc.get("lots")
    award = doc.get("award")
    if (
        doc.get("format") != LOTS_FORMAT
        or not isinstance(lots, list)
        or not isinstance(award, Mapping)
    ):
        return [f"not a {LOTS_FORMAT} document (format, lots and award are needed)"]
    rankings = []
    for index, entry in enumerate(lots):
        reference = str(entry.get("lot"))
        scored = entry.get("scoring_file") or {}
        named = (scored.get("tender") or {}).get("lot")
        if named != reference:
            differences.append(
                f"lots[{index}]: the scoring file names lot {named!r}, not {reference!r}"
            )
        differences.extend(f"lot {reference}: {d}" for d in verify(scored))
        rankings.append(lot_ranking_of(reference, scored))
    expected = input_to_json(AwardInput(tuple(rankings), None, AwardRule.LOT_ORDER))["lots"]
    if award.get("lots") != expected:
        differences.append("award: its input is not the lots' rankings")
    differences.extend(f"award: {d}" for d in replay(award))
    return differences
