"""Blind technical scoring: validation of the experts' sheets, aggregation and flags.

Each expert's total for a bid is the sum of their criterion scores.  The bid's technical
score is the mean of the totals, or the trimmed mean (one highest and one lowest total
dropped) when the aggregation is ``trimmed_mean``, or ``auto`` with 5 or more experts; it is
rounded once to 2 places, ROUND_HALF_UP.  Per-criterion means are for information only.

A score must be a multiple of the criterion's step within [0, max] (an ``error`` flag
otherwise).  A score at 0 or at the maximum needs a written reason, and so does a score more
than ``outlier_pct`` % of the criterion's maximum away from the panel mean for that
criterion and bid (``reason_required`` flags, carrying the reason when one is recorded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from evaluation.decimals import HUNDRED, ZERO, evaluation_context, fmt, round2
from evaluation.messages import Flag, Severity
from evaluation.model import TRIM_FROM_EXPERTS, Aggregation, TechnicalCriterion

Sheets = Mapping[str, Mapping[str, Decimal]]  # expert id -> criterion key -> score


@dataclass(frozen=True)
class TechnicalScore:
    method: Aggregation  # MEAN or TRIMMED_MEAN as applied
    expert_totals: dict[str, Decimal]
    dropped_highest: str | None  # expert whose total was dropped (trimmed mean)
    dropped_lowest: str | None
    mean: Decimal  # full precision
    total: Decimal  # rounded once to 2 places
    criterion_means: dict[str, Decimal]  # for information, rounded to 2 places


def mean(values: Sequence[Decimal]) -> Decimal:
    """Arithmetic mean in the evaluation context (full precision)."""
    if not values:
        raise ValueError("mean of no values")
    with evaluation_context():
        return sum(values, ZERO) / len(values)


def trimmed_mean(values: Sequence[Decimal]) -> Decimal:
    """Mean after dropping one highest and one lowest value (needs at least 3 values)."""
    if len(values) < 3:
        raise ValueError("a trimmed mean needs at least 3 values")
    return mean(sorted(values)[1:-1])


def applied_method(aggregation: Aggregation, experts: int) -> Aggregation:
    """The aggregation actually used for a panel of ``experts``."""
    if aggregation is Aggregation.AUTO:
        return Aggregation.TRIMMED_MEAN if experts >= TRIM_FROM_EXPERTS else Aggregation.MEAN
    return aggregation


def minimum_experts(method: Aggregation) -> int:
    return 3 if method is Aggregation.TRIMMED_MEAN else 1


def expert_totals(sheets: Sheets) -> dict[str, Decimal]:
    with evaluation_context():
        return {expert: sum(sheet.values(), ZERO) for expert, sheet in sheets.items()}


def aggregate(
    sheets: Sheets, criteria: Sequence[TechnicalCriterion], aggregation: Aggregation
) -> TechnicalScore:
    """The technical score of one bid from its experts' sheets."""
    if not criteria:
        return TechnicalScore(Aggregation.MEAN, {}, None, None, ZERO, round2(ZERO), {})
    totals = expert_totals(sheets)
    method = applied_method(aggregation, len(totals))
    if len(totals) < minimum_experts(method):
        raise ValueError(f"{method} needs at least {minimum_experts(method)} experts")
    # Ties between totals: which expert is named as dropped does not change the mean; the
    # expert id makes the choice deterministic.
    ordered = sorted(totals, key=lambda e: (totals[e], e))
    dropped_low = dropped_high = None
    if method is Aggregation.TRIMMED_MEAN:
        dropped_low, dropped_high = ordered[0], ordered[-1]
        value = trimmed_mean(list(totals.values()))
    else:
        value = mean(list(totals.values()))
    criterion_means = {
        c.key: round2(mean([sheet[c.key] for sheet in sheets.values()])) for c in criteria
    }
    return TechnicalScore(
        method, totals, dropped_high, dropped_low, value, round2(value), criterion_means
    )


def score_problem(score: Decimal, criterion: TechnicalCriterion) -> str | None:
    """Why `score` is not a valid score for `criterion`: ``score_out_of_range`` (outside
    [0, max]) or ``score_not_multiple_of_step``; None when it is valid."""
    if score < 0 or score > criterion.max_points:
        # One problem per score is enough; and the step test is only safe in range.
        return "score_out_of_range"
    if score % criterion.step != 0:
        return "score_not_multiple_of_step"
    return None


def is_extreme(score: Decimal, criterion: TechnicalCriterion) -> bool:
    """A score at 0 or at the criterion's maximum: it needs a written reason."""
    return score == 0 or score == criterion.max_points


def score_errors(bid_id: str, sheets: Sheets, criteria: Sequence[TechnicalCriterion]) -> list[Flag]:
    """``error`` flags: scores outside [0, max] or not a multiple of the step."""
    flags = []
    with evaluation_context():
        for expert in sorted(sheets):
            sheet = sheets[expert]
            for c in criteria:
                score = sheet.get(c.key)
                if score is None:
                    continue
                code = score_problem(score, c)
                if code is None:
                    continue
                if code == "score_out_of_range":
                    extra = {"max_points": fmt(c.max_points)}
                else:
                    extra = {"step": fmt(c.step)}
                params = {"bid": bid_id, "expert": expert, "criterion": c.key}
                flags.append(Flag(code, Severity.ERROR, {**params, "score": fmt(score), **extra}))
    return flags


def reason_flags(
    bid_id: str,
    sheets: Sheets,
    criteria: Sequence[TechnicalCriterion],
    outlier_pct: Decimal,
    reasons: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Flag]:
    """``reason_required`` flags: scores at 0 or max, and outliers against the panel mean."""
    reasons = reasons or {}
    flags = []
    experts = sorted(sheets)
    with evaluation_context():
        for c in criteria:
            scores = {e: sheets[e][c.key] for e in experts if c.key in sheets[e]}
            if not scores:
                continue
            panel_mean = sum(scores.values(), ZERO) / len(scores)
            threshold = c.max_points * outlier_pct / HUNDRED
            for expert, score in scores.items():
                extreme = is_extreme(score, c)
                distance = abs(score - panel_mean)
                if not extreme and distance <= threshold:
                    continue
                params = {"bid": bid_id, "expert": expert, "criterion": c.key, "score": fmt(score)}
                given = reasons.get(expert, {}).get(c.key)
                if extreme:
                    end = "minimum" if score == 0 else "maximum"
                    flags.append(
                        Flag(
                            "extreme_score", Severity.REASON_REQUIRED, {**params, "end": end}, given
                        )
                    )
                if distance > threshold:
                    flags.append(
                        Flag(
                            "outlier_score",
                            Severity.REASON_REQUIRED,
                            {
                                **params,
                                "distance": fmt(distance),
                                "mean": fmt(panel_mean),
                                "threshold": fmt(threshold),
                            },
                            given,
                        )
                    )
    return flags
