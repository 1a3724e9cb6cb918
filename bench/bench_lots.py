"""Benchmark (not a test): evaluate and award 20 lots of 50 bids vs score the same bids as one lot.

The bids: ``evaluation.samples.synthetic_document`` (9 experts, 20 technical and 3 commercial
criteria, average benchmark), cut into ``--lots`` lots of ``--bids`` bids.  Each lot's bids
come from companies spread so that every company bids in several lots; the award step
(``evaluation.lots``) then applies a win limit of ``--limit`` lots per company under each
order rule.  All timings run in the same process, interleaved, and each figure is the best of
``--repeat`` rounds.  Prints the figures and the ratio.

    python bench/bench_lots.py [--lots 20] [--bids 50] [--limit 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.decimals import parse_decimal
from evaluation.lots import AwardRule, LotRanking, Ranked, award_lots
from evaluation.samples import synthetic_document
from evaluation.scoring_file import dumps, score_text


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def lot_documents(whole: dict[str, Any], lots: int, bids: int) -> list[str]:
    texts = []
    for n in range(lots):
        doc = copy.deepcopy(whole)
        doc["tender"] = {"lot": str(n + 1)}
        doc["bids"] = whole["bids"][n * bids : (n + 1) * bids]
        texts.append(dumps(doc))
    return texts


def company(lot: int, rank: int, companies: int) -> str:
    """Six strong companies bid in every lot and fill its first five places; the rest of
    each lot comes from the other companies (each bidding in several lots)."""
    if rank < STRONG_PLACES:
        return f"S{(rank + lot) % STRONG}"
    return f"C{(rank * 7 + lot * 13) % companies:03d}"


STRONG = 6
STRONG_PLACES = 5


def rankings(scored: list[str], companies: int) -> list[LotRanking]:
    out = []
    for n, text in enumerate(scored):
        result = json.loads(text)["result"]
        bids = {b["id"]: b for b in result["bids"]}
        out.append(
            LotRanking(
                str(n + 1),
                tuple(
                    Ranked(
                        company(n, rank, companies),
                        parse_decimal(bids[r["bid"]]["total"]),
                        parse_decimal(bids[r["bid"]]["price"]),
                    )
                    for rank, r in enumerate(result["ranking"])
                ),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=20)
    parser.add_argument("--bids", type=int, default=50)
    parser.add_argument("--companies", type=int, default=120)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.bids > args.companies:
        parser.error("--companies must be at least --bids (one bid per company per lot)")

    whole = synthetic_document(bids=args.lots * args.bids)
    one_text = dumps(whole)
    lot_texts = lot_documents(whole, args.lots, args.bids)
    score_text(one_text)  # warm-up (schema compiled, caches filled)
    ranked = rankings([score_text(t) for t in lot_texts], args.companies)
    tops: dict[str, int] = {}
    for lot in ranked:
        tops[lot.ranking[0].company] = tops.get(lot.ranking[0].company, 0) + 1
    print(
        f"{args.lots} lots x {args.bids} bids ({args.companies} + {STRONG} companies, each "
        f"bidding in several lots), win limit {args.limit}; companies first in more lots "
        f"than the limit: {sum(1 for v in tops.values() if v > args.limit)}"
    )

    best: dict[str, float] = {"one": float("inf"), "lots": float("inf")}
    for rule in AwardRule:
        best[rule.value] = float("inf")
    searches: dict[str, Any] = {}
    for _ in range(args.repeat):
        best["one"] = min(best["one"], timed(lambda: score_text(one_text)))
        best["lots"] = min(best["lots"], timed(lambda: [score_text(t) for t in lot_texts]))
        for rule in AwardRule:
            start = time.perf_counter()
            award = award_lots(ranked, args.limit, rule)
            best[rule.value] = min(best[rule.value], time.perf_counter() - start)
            searches[rule.value] = award.search

    rows = [
        (f"score {args.lots * args.bids} bids as one lot", f"{best['one'] * 1000:.1f} ms"),
        (f"score {args.lots} lots of {args.bids} bids", f"{best['lots'] * 1000:.1f} ms"),
    ]
    for rule in AwardRule:
        search = searches[rule.value]
        how = ""
        if search is not None and search.method == "flow":
            how = " (min-cost flow, exact)"
        elif search is not None:
            how = f" ({search.states} states, complete: {search.complete})"
        rows.append((f"award, {rule.value}{how}", f"{best[rule.value] * 1000:.2f} ms"))
    slowest = max(best[rule.value] for rule in AwardRule)
    rows.append(
        (
            "ratio (lots + slowest award) / one lot",
            f"{(best['lots'] + slowest) / best['one']:.2f}",
        )
    )
    for label, value in rows:
        print(f"{label + ':':<62}{value:>12}")


if __name__ == "__main__":
    main()
