"""Technical scoring: aggregation (mean / trimmed mean), step and range errors, reason flags."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.model import Aggregation, TechnicalCriterion
from evaluation.technical import (
    aggregate,
    applied_method,
    mean,
    reason_flags,
    score_errors,
    trimmed_mean,
)

Q = TechnicalCriterion("q", D(100), D("0.5"))


def sheets(*totals: str) -> dict[str, dict[str, D]]:
    return {f"E{i + 1}": {"q": D(t)} for i, t in enumerate(totals)}


def test_mean_below_five_experts():
    # auto with 3 experts: mean = (70 + 75 + 81) / 3 = 75.333... -> 75.33
    ts = aggregate(sheets("70", "75", "81"), [Q], Aggregation.AUTO)
    assert ts.method is Aggregation.MEAN
    assert ts.mean == D("75.33333333333333333333333333")
    assert ts.total == D("75.33")
    assert ts.dropped_highest is ts.dropped_lowest is None


def test_trimmed_mean_from_five_experts():
    # auto with 5 experts: drop 95 (E5) and 70 (E1); (75 + 80 + 85) / 3 = 80
    ts = aggregate(sheets("70", "75", "80", "85", "95"), [Q], Aggregation.AUTO)
    assert ts.method is Aggregation.TRIMMED_MEAN
    assert (ts.dropped_highest, ts.dropped_lowest) == ("E5", "E1")
    assert ts.total == D("80.00")
    # per-criterion means are informative and untrimmed: 405 / 5 = 81
    assert ts.criterion_means == {"q": D("81.00")}


def test_technical_score_rounds_half_up_at_the_boundary():
    # 4 experts, mean: (80 + 80 + 80 + 80.5) / 4 = 80.125 -> 80.13 (half even: 80.12)
    ts = aggregate(sheets("80", "80", "80.5", "80"), [Q], Aggregation.AUTO)
    assert ts.mean == D("80.125")
    assert ts.total == D("80.13")
    # 6 experts, trimmed: drop 99 and 70; (80 + 80 + 80 + 80.5) / 4 = 80.125 -> 80.13
    ts = aggregate(sheets("70", "80", "80", "80", "80.5", "99"), [Q], Aggregation.AUTO)
    assert ts.total == D("80.13")


def test_expert_total_is_the_sum_of_criteria():
    a, b = TechnicalCriterion("a", D(10), D(1)), TechnicalCriterion("b", D(20), D("0.5"))
    s = {"E1": {"a": D(7), "b": D("12.5")}, "E2": {"a": D(8), "b": D(15)}}
    ts = aggregate(s, [a, b], Aggregation.MEAN)
    # totals 19.5 and 23 -> mean 21.25
    assert ts.expert_totals == {"E1": D("19.5"), "E2": D(23)}
    assert ts.total == D("21.25")
    assert ts.criterion_means == {"a": D("7.50"), "b": D("13.75")}


def test_explicit_aggregation_overrides_auto():
    assert applied_method(Aggregation.MEAN, 9) is Aggregation.MEAN
    assert applied_method(Aggregation.TRIMMED_MEAN, 3) is Aggregation.TRIMMED_MEAN
    assert applied_method(Aggregation.AUTO, 4) is Aggregation.MEAN
    assert applied_method(Aggregation.AUTO, 5) is Aggregation.TRIMMED_MEAN
    with pytest.raises(ValueError, match="at least 3"):
        aggregate(sheets("1", "2"), [Q], Aggregation.TRIMMED_MEAN)


def test_score_errors_for_step_and_range():
    c = TechnicalCriterion("q", D(10), D("0.5"))
    s = {"E1": {"q": D("7.3")}, "E2": {"q": D("10.5")}, "E3": {"q": D("-0.5")}, "E4": {"q": D(10)}}
    flags = score_errors("B1", s, [c])
    assert [(f.code, f.params["expert"]) for f in flags] == [
        ("score_not_multiple_of_step", "E1"),
        ("score_out_of_range", "E2"),
        ("score_out_of_range", "E3"),
    ]
    assert flags[0].message == (
        "Expert E1 gave 7.3 for 'q' on bid B1, not a multiple of the step 0.5."
    )


def test_reason_flags_for_extremes_and_outliers():
    # max 10, threshold 30 % of 10 = 3.  Scores 10, 6, 5, 5, 0: mean = 26 / 5 = 5.2.
    # E1: 10 is the maximum (reason) and 4.8 from the mean (> 3: outlier).
    # E5: 0 is the minimum (reason) and 5.2 from the mean (outlier).  Others are within 3.
    c = TechnicalCriterion("q", D(10), D(1))
    s = {f"E{i + 1}": {"q": D(v)} for i, v in enumerate((10, 6, 5, 5, 0))}
    flags = reason_flags("B1", s, [c], D(30), {"E1": {"q": "Best plan seen"}})
    got = [(f.code, f.params["expert"], f.reason) for f in flags]
    assert got == [
        ("extreme_score", "E1", "Best plan seen"),
        ("outlier_score", "E1", "Best plan seen"),
        ("extreme_score", "E5", None),
        ("outlier_score", "E5", None),
    ]
    assert flags[1].params["distance"] == "4.8"
    assert flags[1].params["mean"] == "5.2"


def test_outlier_threshold_is_strictly_more_than_30_percent():
    # max 10 -> threshold 3; scores 2 and 8: mean 5, each exactly 3 away: not flagged.
    c = TechnicalCriterion("q", D(10), D(1))
    s = {"E1": {"q": D(2)}, "E2": {"q": D(8)}}
    assert reason_flags("B1", s, [c], D(30)) == []


totals_lists = st.lists(st.integers(0, 200).map(lambda n: D(n) / 2), min_size=3, max_size=11)


@given(totals_lists)
def test_trimmed_mean_within_min_and_max(values):
    assert min(values) <= trimmed_mean(values) <= max(values)
    assert min(values) <= mean(values) <= max(values)


@given(totals_lists, st.randoms(use_true_random=False))
def test_aggregation_is_order_invariant(values, rnd):
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert trimmed_mean(shuffled) == trimmed_mean(values)
    assert mean(shuffled) == mean(values)
    experts = {f"E{i}": {"q": v} for i, v in enumerate(values)}
    keys = list(experts)
    random.Random(len(values)).shuffle(keys)
    reordered = {k: experts[k] for k in keys}
    first = aggregate(experts, [Q], Aggregation.AUTO)
    second = aggregate(reordered, [Q], Aggregation.AUTO)
    assert (first.total, first.dropped_highest, first.dropped_lowest) == (
        second.total,
        second.dropped_highest,
        second.dropped_lowest,
    )


@given(totals_lists)
def test_trimming_drops_exactly_one_highest_and_one_lowest(values):
    expected = (sum(values) - max(values) - min(values)) / (len(values) - 2)
    assert trimmed_mean(values) == expected
