"""Market signals across competitions (red flags for supervisors, computed over history).

Plain records in, ``RedFlag`` out; the app gathers the records nightly. Defaults
(``MarketThresholds``):

- ``cover_bidding``: a company met the same winner in at least 3 competitions, lost every
  one of them to it, and never won anything (platform default; the cover-bid pattern of
  Imhof, Karagök and Rutz 2018 and the OECD Guidelines for Fighting Bid Rigging in Public
  Procurement, 2009: "a company that always bids but never wins").
- ``winner_rotation``: the same set of 2 or more companies bid together in at least 3
  competitions, and the wins were shared among them in turn (each member won at least once
  when there were as many competitions as members, and no member won more than one more time
  than another; OECD 2009, "bid rotation"; counts are platform defaults).
- ``single_bid_share``: at least 20 % of a centre's or procuring entity's opened competitions
  (at least 5 of them) received a single bid. 20 %: the European Commission's Single Market
  Scoreboard marks a single-bidder share above 20 % as unsatisfactory.
- ``expert_repeated_entity``: an expert sat on at least half (and at least 3) of a procuring
  entity's last 10 panels (platform defaults).
- ``expert_score_deviation``: over at least 5 marks, an expert's mark differs from the median
  of the whole panel's marks (for the same bid and criterion) by at least 10 % of the
  criterion's maximum points on average, always in the same direction (platform defaults).
  The median, not the mean of the others: on a panel of three, one deviating expert would
  otherwise make the two others deviate too.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from evaluation.decimals import ZERO, evaluation_context, fmt
from evaluation.screens import RedFlag

TWO_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class MarketThresholds:
    cover_min_meetings: int = 3
    rotation_min_competitions: int = 3
    single_bid_share: Decimal = Decimal("0.2")
    single_bid_min_competitions: int = 5
    expert_window: int = 10
    expert_min_panels: int = 3
    expert_share: Decimal = Decimal("0.5")
    deviation_min_sheets: int = 5
    deviation_share: Decimal = Decimal("0.1")


@dataclass(frozen=True)
class Competition:
    """One opened competition: who bid, who won (None: not awarded yet or failed)."""

    key: str
    bidders: frozenset[str]
    winner: str | None = None
    centre: str = ""
    entity: str = ""


@dataclass(frozen=True)
class Sitting:
    """An expert's seat on a panel, in time order within the caller's list."""

    expert: str
    panel: str
    entity: str


@dataclass(frozen=True)
class SheetDeviation:
    """An expert's mark on one bid and criterion, against the median of the panel's marks."""

    expert: str
    score: Decimal
    panel_median: Decimal
    max_points: Decimal


def _two(value: Decimal) -> str:
    with evaluation_context():
        return fmt(value.quantize(TWO_PLACES))


def cover_bidding(
    competitions: Sequence[Competition], thresholds: MarketThresholds | None = None
) -> list[RedFlag]:
    t = thresholds or MarketThresholds()
    won: Counter[str] = Counter(c.winner for c in competitions if c.winner)
    meetings: Counter[tuple[str, str]] = Counter()
    losses: Counter[tuple[str, str]] = Counter()
    for c in competitions:
        if c.winner is None or c.winner not in c.bidders:
            continue
        for bidder in c.bidders - {c.winner}:
            losses[(bidder, c.winner)] += 1
    for c in competitions:
        if c.winner is None:
            continue
        for a in c.bidders:
            for b in c.bidders:
                if a != b:
                    meetings[(a, b)] += 1
    flags = []
    for (loser, winner), lost in sorted(losses.items()):
        together = meetings[(loser, winner)]
        if won[loser] == 0 and lost >= t.cover_min_meetings and lost == together:
            flags.append(
                RedFlag(
                    "cover_bidding",
                    Decimal(lost) / Decimal(lost + 2),
                    str(t.cover_min_meetings),
                    {
                        "company": loser,
                        "winner": winner,
                        "losses": str(lost),
                        "tenders": str(together),
                    },
                )
            )
    return flags


def winner_rotation(
    competitions: Sequence[Competition], thresholds: MarketThresholds | None = None
) -> list[RedFlag]:
    t = thresholds or MarketThresholds()
    by_group: dict[frozenset[str], list[Competition]] = defaultdict(list)
    for c in competitions:
        if len(c.bidders) >= 2 and c.winner in c.bidders:
            by_group[c.bidders].append(c)
    flags = []
    for group, rows in sorted(by_group.items(), key=lambda item: sorted(item[0])):
        k = len(rows)
        if k < t.rotation_min_competitions:
            continue
        wins = Counter(c.winner for c in rows)
        counts = [wins.get(member, 0) for member in group]
        everyone = k < len(group) or min(counts) >= 1
        if len(wins) >= 2 and everyone and max(counts) - min(counts) <= 1:
            flags.append(
                RedFlag(
                    "winner_rotation",
                    Decimal(k) / Decimal(k + 2),
                    str(t.rotation_min_competitions),
                    {
                        "companies": ", ".join(sorted(group)),
                        "tenders": str(k),
                        "competitions": ", ".join(sorted(c.key for c in rows)),
                    },
                )
            )
    return flags


def single_bid_shares(
    competitions: Sequence[Competition],
    *,
    by: str,
    bid_counts: dict[str, int],
    thresholds: MarketThresholds | None = None,
) -> list[RedFlag]:
    """Share of single-bid competitions per centre (``by="centre"``) or procuring entity
    (``by="entity"``); ``bid_counts`` maps a competition's key to its number of bids."""
    if by not in ("centre", "entity"):
        raise ValueError("by is 'centre' or 'entity'")
    t = thresholds or MarketThresholds()
    totals: Counter[str] = Counter()
    singles: Counter[str] = Counter()
    for c in competitions:
        subject = getattr(c, by)
        if not subject:
            continue
        totals[subject] += 1
        if bid_counts.get(c.key, len(c.bidders)) == 1:
            singles[subject] += 1
    flags = []
    for subject in sorted(totals):
        total, single = totals[subject], singles[subject]
        if total < t.single_bid_min_competitions:
            continue
        with evaluation_context():
            share = Decimal(single) / Decimal(total)
        if share >= t.single_bid_share:
            flags.append(
                RedFlag(
                    "single_bid_share",
                    min(Decimal(1), share),
                    fmt(t.single_bid_share),
                    {
                        "subject": subject,
                        "kind": by,
                        "single": str(single),
                        "tenders": str(total),
                        "share": _two(share),
                        "threshold": fmt(t.single_bid_share),
                    },
                )
            )
    return flags


def expert_repeated_entity(
    sittings: Sequence[Sitting], thresholds: MarketThresholds | None = None
) -> list[RedFlag]:
    """``sittings`` in time order (oldest first)."""
    t = thresholds or MarketThresholds()
    panels_of: dict[str, list[str]] = defaultdict(list)
    for s in sittings:
        if s.panel not in panels_of[s.entity]:
            panels_of[s.entity].append(s.panel)
    flags = []
    for entity in sorted(panels_of):
        recent = set(panels_of[entity][-t.expert_window :])
        seats = Counter(s.expert for s in sittings if s.entity == entity and s.panel in recent)
        for expert, count in sorted(seats.items()):
            with evaluation_context():
                share = Decimal(count) / Decimal(len(recent))
            if count >= t.expert_min_panels and share >= t.expert_share:
                flags.append(
                    RedFlag(
                        "expert_repeated_entity",
                        share,
                        fmt(t.expert_share),
                        {
                            "expert": expert,
                            "entity": entity,
                            "count": str(count),
                            "panels": str(len(recent)),
                            "threshold": fmt(t.expert_share),
                        },
                    )
                )
    return flags


def expert_score_deviation(
    sheets: Sequence[SheetDeviation], thresholds: MarketThresholds | None = None
) -> list[RedFlag]:
    t = thresholds or MarketThresholds()
    by_expert: dict[str, list[Decimal]] = defaultdict(list)
    with evaluation_context():
        for s in sheets:
            if s.max_points > 0:
                by_expert[s.expert].append((s.score - s.panel_median) / s.max_points)
    flags = []
    for expert in sorted(by_expert):
        deviations = by_expert[expert]
        if len(deviations) < t.deviation_min_sheets:
            continue
        same_sign = all(d > 0 for d in deviations) or all(d < 0 for d in deviations)
        with evaluation_context():
            mean = sum(deviations, ZERO) / len(deviations)
        if same_sign and abs(mean) >= t.deviation_share:
            flags.append(
                RedFlag(
                    "expert_score_deviation",
                    min(Decimal(1), abs(mean) / t.deviation_share / 2),
                    fmt(t.deviation_share),
                    {
                        "expert": expert,
                        "sheets": str(len(deviations)),
                        "mean_deviation": _two(mean),
                        "threshold": fmt(t.deviation_share),
                    },
                )
            )
    return flags
