"""Benchmark (not a test): score a large tender vs only parse and validate its scoring file.

The tender: 1,000 bids, 9 experts, 20 technical criteria and 3 commercial criteria, average
benchmark (``evaluation.samples.synthetic_document``).  All timings run in the same process on
the same text, interleaved, and each figure is the best of ``--repeat`` rounds, so a busy
machine disturbs the comparison as little as possible.  Prints the figures and the ratio.

    python bench/bench_scoring.py [--bids 1000] [--experts 9] [--criteria 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.engine import evaluate, result_to_json
from evaluation.samples import synthetic_document
from evaluation.scoring_file import dumps, load, parse_json, score_text, validate


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=1000)
    parser.add_argument("--experts", type=int, default=9)
    parser.add_argument("--criteria", type=int, default=20)
    parser.add_argument("--commercial", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    text = dumps(
        synthetic_document(
            bids=args.bids,
            experts=args.experts,
            technical_criteria=args.criteria,
            commercial_criteria=args.commercial,
        )
    )
    scored = score_text(text)  # warm-up (schema compiled, caches filled) and a size to report
    tender = validate(parse_json(text))
    scores = args.bids * args.experts * args.criteria
    print(
        f"tender: {args.bids} bids, {args.experts} experts, {args.criteria} technical and "
        f"{args.commercial} commercial criteria ({scores:,} technical scores)"
    )
    print(f"scoring file: {len(text) / 1e6:.1f} MB in, {len(scored) / 1e6:.1f} MB scored")

    best = {"parse": float("inf"), "compute": float("inf"), "score": float("inf")}
    for _ in range(args.repeat):
        best["parse"] = min(best["parse"], timed(lambda: load(text)))
        best["compute"] = min(
            best["compute"], timed(lambda: dumps(result_to_json(evaluate(tender))))
        )
        best["score"] = min(best["score"], timed(lambda: score_text(text)))

    rows = [
        ("parse + validate", f"{best['parse'] * 1000:.1f} ms"),
        ("compute + dump the result only", f"{best['compute'] * 1000:.1f} ms"),
        ("score (parse + validate + compute + dump)", f"{best['score'] * 1000:.1f} ms"),
        ("ratio score / parse+validate", f"{best['score'] / best['parse']:.2f}"),
    ]
    for label, value in rows:
        print(f"{label + ':':<44}{value:>12}")


if __name__ == "__main__":
    main()
