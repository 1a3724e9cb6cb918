"""Small builders shared by the evaluation tests."""

from __future__ import annotations

import copy
from typing import Any

from evaluation import score
from evaluation.samples import example_document, price_only_document

__all__ = ["bid_result", "example", "price_only_document", "scored", "technical_sheets"]


def example() -> dict[str, Any]:
    return copy.deepcopy(example_document())


def scored(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` of scoring ``doc``."""
    return score(doc)["result"]


def bid_result(result: dict[str, Any], bid_id: str) -> dict[str, Any]:
    return next(b for b in result["bids"] if b["id"] == bid_id)


def technical_sheets(totals: list[str], key: str = "q") -> dict[str, dict[str, str]]:
    """One criterion, one score per expert E1..En."""
    return {f"E{i + 1}": {key: t} for i, t in enumerate(totals)}
