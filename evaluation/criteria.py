"""Commercial criteria: points computed automatically from a bid's structured fields.

``linear``: full points at the better bound, none at the worse one, linear in between and
clamped outside (better = lower: max × (upper − value) / (upper − lower); better = higher:
max × (value − lower) / (upper − lower)).  ``steps``: the most points among the steps whose
threshold the value reaches (value >= threshold when higher is better, <= when lower is
better); none reached gives 0.  Each criterion's score is rounded once to 2 places
(ROUND_HALF_UP); the commercial total is the sum of the rounded scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from evaluation.decimals import ZERO, evaluation_context, parse_decimal, round2
from evaluation.model import Better, CommercialCriterion, CriterionRule


@dataclass(frozen=True)
class CriterionScore:
    key: str
    field: str
    value: Decimal
    raw: Decimal  # before rounding
    score: Decimal  # rounded once to 2 places


@dataclass(frozen=True)
class CommercialScore:
    criteria: tuple[CriterionScore, ...]
    total: Decimal  # sum of the rounded criterion scores


def criterion_points(criterion: CommercialCriterion, value: Decimal) -> Decimal:
    """Unrounded points for ``value`` under ``criterion``, within [0, max_points]."""
    with evaluation_context():
        if criterion.rule is CriterionRule.STEPS:
            if criterion.better is Better.HIGHER:
                reached = [s.points for s in criterion.steps if value >= s.threshold]
            else:
                reached = [s.points for s in criterion.steps if value <= s.threshold]
            return max(reached, default=ZERO)
        lower, upper = criterion.lower, criterion.upper
        if lower is None or upper is None or lower >= upper:
            raise ValueError(f"criterion {criterion.key!r}: linear needs lower < upper")
        if criterion.better is Better.HIGHER:
            raw = criterion.max_points * (value - lower) / (upper - lower)
        else:
            raw = criterion.max_points * (upper - value) / (upper - lower)
        return min(max(raw, ZERO), criterion.max_points)


def score_commercial(
    criteria: Sequence[CommercialCriterion], fields: Mapping[str, str | bool]
) -> CommercialScore:
    """Score a compliant bid's fields (compliance guarantees each is a decimal string)."""
    scores = []
    for criterion in criteria:
        raw_value = fields[criterion.field]
        if not isinstance(raw_value, str):
            raise ValueError(f"field {criterion.field!r} is not a decimal string")
        value = parse_decimal(raw_value)
        raw = criterion_points(criterion, value)
        scores.append(CriterionScore(criterion.key, criterion.field, value, raw, round2(raw)))
    with evaluation_context():
        total = sum((s.score for s in scores), ZERO)
    return CommercialScore(tuple(scores), total)
