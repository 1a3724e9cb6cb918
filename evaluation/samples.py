"""Scoring files for demonstrations, tests and the benchmark.

``example_document()`` is a small goods tender worth reading; ``synthetic_document()``
builds a tender of any size from a seed (always the same file for the same arguments).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def example_document() -> dict[str, Any]:
    """A small goods tender: lowest-price benchmark, two commercial, two technical criteria."""
    return {
        "format": "fairbid-scoring-file/1",
        "tender": {"id": "T-2025-0001", "lot": "1", "title": "Office furniture"},
        "direction": "lowest_wins",
        "ceiling_price": "100000.00",
        "min_bids": 3,
        "price": {"method": "lowest_price_benchmark", "max_points": "40"},
        "commercial_criteria": [
            {
                "key": "delivery",
                "max_points": "5",
                "rule": "linear",
                "field": "delivery_days",
                "better": "lower",
                "lower": "10",
                "upper": "60",
            },
            {
                "key": "warranty",
                "max_points": "5",
                "rule": "steps",
                "field": "warranty_months",
                "better": "higher",
                "steps": [
                    {"threshold": "12", "points": "1"},
                    {"threshold": "24", "points": "3"},
                    {"threshold": "36", "points": "5"},
                ],
            },
        ],
        "technical_criteria": [
            {"key": "design", "max_points": "30", "step": "0.5"},
            {"key": "service_plan", "max_points": "20", "step": "1"},
        ],
        "aggregation": "auto",
        "compliance_rules": {
            "required_documents": ["business_licence"],
            "bid_bond": "2000.00",
            "required_checks": ["signed"],
        },
        "bids": [
            _example_bid("B1", "88000.00", "30", "24", "22 24 20.5 23 21", "15 16 14 15 17"),
            _example_bid("B2", "92500.00", "20", "36", "25 26 24 27 25.5", "16 17 18 16 16"),
            _example_bid("B3", "79800.00", "45", "12", "18 19 20 17.5 18", "12 13 12 14 13"),
            _example_bid("B4", "100000.01", "15", "36", "26 27 25 26 28", "18 18 17 19 18"),
        ],
    }


def price_only_document(
    prices: Sequence[str],
    *,
    method: str = "lowest_price_benchmark",
    max_points: str = "100",
    direction: str = "lowest_wins",
    **top_level: Any,
) -> dict[str, Any]:
    """A scoring file with price scoring only: bids B1, B2, ... at ``prices``."""
    price: dict[str, Any] = {"method": method}
    if method != "lowest_evaluated_price":
        price["max_points"] = max_points
    return {
        "direction": direction,
        "price": price,
        "bids": [{"id": f"B{i + 1}", "price": p} for i, p in enumerate(prices)],
        **top_level,
    }


def _example_bid(
    bid_id: str,
    price: str,
    delivery: str,
    warranty: str,
    design: str,
    service: str,
) -> dict[str, Any]:
    """``design`` and ``service`` list the five experts' scores, separated by spaces."""
    experts = ["E1", "E2", "E3", "E4", "E5"]
    return {
        "id": bid_id,
        "price": price,
        "fields": {"delivery_days": delivery, "warranty_months": warranty},
        "documents": ["business_licence"],
        "bid_bond": "2000.00",
        "compliance": {"signed": True},
        "technical": {
            e: {"design": d, "service_plan": s}
            for e, d, s in zip(experts, design.split(), service.split(), strict=True)
        },
    }


def _halves(n: int) -> str:
    """``n`` halves as a decimal string (5 -> "2.5"), without going through a float."""
    return f"{n // 2}.5" if n % 2 else str(n // 2)


def synthetic_document(
    *,
    bids: int = 1000,
    experts: int = 9,
    technical_criteria: int = 20,
    commercial_criteria: int = 3,
    method: str = "average_benchmark",
    seed: int = 1,
) -> dict[str, Any]:
    """A large, valid scoring file (procurement) with pseudo-random prices and scores."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    tech = [
        {"key": f"t{i:02d}", "max_points": "5", "step": "0.5"} for i in range(technical_criteria)
    ]
    commercial: list[dict[str, Any]] = []
    for i in range(commercial_criteria):
        if i % 2 == 0:
            commercial.append(
                {
                    "key": f"c{i}",
                    "max_points": "4",
                    "rule": "linear",
                    "field": f"f{i}",
                    "better": "lower",
                    "lower": "10",
                    "upper": "90",
                }
            )
        else:
            commercial.append(
                {
                    "key": f"c{i}",
                    "max_points": "3",
                    "rule": "steps",
                    "field": f"f{i}",
                    "better": "higher",
                    "steps": [
                        {"threshold": "12", "points": "1"},
                        {"threshold": "24", "points": "2"},
                        {"threshold": "36", "points": "3"},
                    ],
                }
            )
    bid_list = []
    for b in range(bids):
        cents = rng.randrange(80_000_000, 120_000_000)
        # Each bid has a quality per criterion (in half points, 1.5 to 4); experts agree
        # within a step or two, as a real panel mostly does.
        quality = {c["key"]: rng.randrange(3, 9) for c in tech}
        bid_list.append(
            {
                "id": f"B{b + 1:04d}",
                "price": f"{cents // 100}.{cents % 100:02d}",
                "fields": {f"f{i}": str(rng.randrange(5, 100)) for i in range(commercial_criteria)},
                "compliance": {"signed": True, "bid_bond": True},
                "technical": {
                    f"E{e + 1}": {
                        key: _halves(q + rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2)))
                        for key, q in quality.items()
                    }
                    for e in range(experts)
                },
            }
        )
    return {
        "format": "fairbid-scoring-file/1",
        "direction": "lowest_wins",
        "ceiling_price": "1180000.00",
        "price": (
            {"method": method}
            if method == "lowest_evaluated_price"
            else {"method": method, "max_points": "30"}
        ),
        "commercial_criteria": commercial,
        "technical_criteria": tech,
        "aggregation": "auto",
        "compliance_rules": {"required_checks": ["signed", "bid_bond"]},
        "bids": bid_list,
    }
