"""Price-pattern screens for supervisors."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from evaluation.screens import ScreenThresholds, coefficient_of_variation, screen_prices


def prices(*values: str) -> dict[str, D]:
    return {f"B{i + 1}": D(v) for i, v in enumerate(values)}


def codes(flags) -> list[str]:
    return [f.code for f in flags]


def test_single_bid():
    flags = screen_prices(prices("100"))
    assert codes(flags) == ["single_bid"]
    assert flags[0].message == "Only one bid was received."


def test_independent_looking_prices_raise_nothing():
    assert screen_prices(prices("812000", "905500", "1003000", "951250")) == []


def test_identical_prices():
    flags = screen_prices(prices("900", "1000", "900", "1200"))
    assert codes(flags) == ["identical_prices"]
    assert flags[0].params == {"bid": "B1", "bids": "B1, B3", "price": "900"}


def test_low_coefficient_of_variation():
    # mean 1000, deviations -4, -2, +6: population sd = sqrt(56 / 3) = 4.3204..., CV 0.00432
    flags = screen_prices(prices("996", "998", "1006"))
    assert codes(flags) == ["low_price_variation"]
    assert flags[0].params["cv"].startswith("0.0043204")


def test_equal_spacing():
    flags = screen_prices(prices("1000", "1100", "1200", "1300"))
    assert codes(flags) == ["equal_price_spacing"]
    assert flags[0].params["gap"] == "100"
    # within the 1 % tolerance of the mean gap, still flagged; beyond it, not
    assert codes(screen_prices(prices("1000", "1100", "1200.5", "1300"))) == ["equal_price_spacing"]
    assert screen_prices(prices("1000", "1100", "1210", "1300")) == []


def test_thresholds_are_configurable():
    loose = ScreenThresholds(low_cv=D("0.5"))
    assert "low_price_variation" in codes(screen_prices(prices("800", "1000", "1250"), loose))


def test_coefficient_of_variation_worked_example():
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population sd 2 -> CV 0.4
    assert coefficient_of_variation([D(v) for v in (2, 4, 4, 4, 5, 5, 7, 9)]) == D("0.4")


@given(st.lists(st.decimals(min_value=1, max_value=10**9, places=2), min_size=1, max_size=15))
def test_screens_never_fail_and_are_order_invariant(values):
    forward = {f"B{i}": v for i, v in enumerate(values)}
    backward = dict(reversed(list(forward.items())))
    assert screen_prices(forward) == screen_prices(backward)
