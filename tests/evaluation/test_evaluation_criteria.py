"""Commercial criteria: linear between bounds (both directions) and step tables."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from evaluation.criteria import criterion_points, score_commercial
from evaluation.model import Better, CommercialCriterion, CriterionRule, Step


def linear(better: str, lower: str, upper: str, max_points: str = "5") -> CommercialCriterion:
    return CommercialCriterion(
        "c", D(max_points), CriterionRule.LINEAR, "f", Better(better), D(lower), D(upper)
    )


def steps(better: str, table: list[tuple[str, str]], max_points: str = "5") -> CommercialCriterion:
    return CommercialCriterion(
        "c",
        D(max_points),
        CriterionRule.STEPS,
        "f",
        Better(better),
        steps=tuple(Step(D(t), D(p)) for t, p in table),
    )


def test_linear_lower_is_better():
    # delivery days, 10 (best) .. 60 (worst), 5 points: 30 days -> 5 × (60 - 30) / 50 = 3
    c = linear("lower", "10", "60")
    assert criterion_points(c, D(30)) == D(3)
    assert criterion_points(c, D(10)) == D(5)
    assert criterion_points(c, D(5)) == D(5)  # clamped
    assert criterion_points(c, D(60)) == D(0)
    assert criterion_points(c, D(70)) == D(0)  # clamped


def test_linear_higher_is_better():
    # warranty months, 12 (worst) .. 36 (best), 4 points: 24 -> 4 × (24 - 12) / 24 = 2
    c = linear("higher", "12", "36", "4")
    assert criterion_points(c, D(24)) == D(2)
    assert criterion_points(c, D(48)) == D(4)
    assert criterion_points(c, D(0)) == D(0)


def test_linear_rounds_each_criterion_once_half_up():
    # 1 × (1 - 0) / 8 = 0.125 -> 0.13 (half even: 0.12); the total sums rounded scores.
    c = linear("higher", "0", "8", "1")
    other = CommercialCriterion("d", D(1), CriterionRule.LINEAR, "g", Better.HIGHER, D(0), D(8))
    result = score_commercial([c, other], {"f": "1", "g": "1"})
    assert [s.raw for s in result.criteria] == [D("0.125"), D("0.125")]
    assert [s.score for s in result.criteria] == [D("0.13"), D("0.13")]
    assert result.total == D("0.26")  # not round(0.25) = 0.25


def test_step_table_higher_is_better():
    c = steps("higher", [("12", "1"), ("24", "3"), ("36", "5")])
    assert [criterion_points(c, D(v)) for v in (11, 12, 30, 36, 48)] == [
        D(0),
        D(1),
        D(3),
        D(5),
        D(5),
    ]


def test_step_table_lower_is_better():
    c = steps("lower", [("30", "5"), ("60", "2")])
    assert [criterion_points(c, D(v)) for v in (10, 30, 45, 60, 61)] == [
        D(5),
        D(5),
        D(2),
        D(2),
        D(0),
    ]


values = st.decimals(min_value=D(-100), max_value=D(200), places=2)


@given(values, values)
def test_linear_is_bounded_and_monotonic(a, b):
    for better in ("lower", "higher"):
        c = linear(better, "10", "90", "7")
        pa, pb = criterion_points(c, a), criterion_points(c, b)
        assert D(0) <= pa <= D(7)
        if a < b:
            assert (pa >= pb) if better == "lower" else (pa <= pb)


@given(values, values)
def test_steps_are_bounded_and_monotonic(a, b):
    for better in ("lower", "higher"):
        c = steps(better, [("20", "1"), ("50", "4"), ("80", "2")])
        pa, pb = criterion_points(c, a), criterion_points(c, b)
        assert D(0) <= pa <= D(5)
        if a < b:
            assert (pa >= pb) if better == "lower" else (pa <= pb)
