"""Price scoring: worked examples computed by hand, and properties of every method."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.model import Adjustment, AverageBenchmarkParams
from evaluation.price import (
    abnormally_low_flags,
    average_benchmark,
    highest_price,
    lowest_evaluated_price,
    lowest_price_benchmark,
    trim_for_average,
)


def scores(evaluation) -> dict[str, D]:
    return {b.bid_id: b.score for b in evaluation.bids}


# --- lowest_price_benchmark: score = max × B / price, B = the lowest price ------------------


def test_lowest_price_benchmark_worked_example():
    # B = 80000.  A: 30 × 80000 / 80000 = 30; B: 30 × 80000 / 100000 = 24;
    # C: 30 × 80000 / 125000 = 19.2.
    ev = lowest_price_benchmark({"A": D("80000"), "B": D("100000"), "C": D("125000")}, D(30))
    assert ev.benchmark == D("80000")
    assert scores(ev) == {"A": D("30.00"), "B": D("24.00"), "C": D("19.20")}


def test_lowest_price_benchmark_rounds_half_up_at_the_boundary():
    # 25 × 10000 / 16000 = 15.625 exactly: half up gives 15.63 (half even would give 15.62).
    ev = lowest_price_benchmark({"A": D("10000"), "B": D("16000")}, D(25))
    assert ev.by_bid["B"].raw_score == D("15.625")
    assert ev.by_bid["B"].score == D("15.63")
    assert str(ev.by_bid["B"].score) == "15.63"


def test_lowest_price_benchmark_keeps_full_precision_before_rounding():
    # 40 × 79800 / 88000 = 36.272727...; only the score is rounded.
    ev = lowest_price_benchmark({"A": D("79800.00"), "B": D("88000.00")}, D(40))
    assert ev.by_bid["B"].raw_score == D("36.27272727272727272727272727")
    assert ev.by_bid["B"].score == D("36.27")


# --- highest_price: score = max × price / B, B = the highest price --------------------------


def test_highest_price_worked_example():
    # B = 500000.  400000: 40 × 400000 / 500000 = 32; 312500: 40 × 312500 / 500000 = 25.
    ev = highest_price({"A": D("500000"), "B": D("400000"), "C": D("312500")}, D(40))
    assert ev.benchmark == D("500000")
    assert scores(ev) == {"A": D("40.00"), "B": D("32.00"), "C": D("25.00")}


def test_highest_price_rounds_half_up_at_the_boundary():
    # 40 × 312500 / 800000 = 15.625 -> 15.63.
    ev = highest_price({"A": D("800000"), "B": D("312500")}, D(40))
    assert ev.by_bid["B"].raw_score == D("15.625")
    assert ev.by_bid["B"].score == D("15.63")


# --- average_benchmark ------------------------------------------------------------------------


def test_average_benchmark_small_tender_uses_every_price():
    # n = 3 < 6: mean = 100000 = B.  D(90000) = -10 -> 60 - 0.5 × 10 = 55;
    # D(100000) = 0 -> 60; D(110000) = +10 -> 60 - 1.0 × 10 = 50.
    ev = average_benchmark({"A": D("90000"), "B": D("100000"), "C": D("110000")}, D(60))
    assert ev.dropped == ()
    assert ev.mean == ev.benchmark == D("100000")
    assert [b.deviation for b in ev.bids] == [D(-10), D(0), D(10)]
    assert scores(ev) == {"A": D("55.00"), "B": D("60.00"), "C": D("50.00")}


def test_average_benchmark_five_bids_drop_nothing():
    # n = 5, one below drop_highest_from (6): all used; mean = 542000 / 5 = 108400.
    prices = {"A": D(100000), "B": D(102000), "C": D(104000), "D": D(106000), "E": D(130000)}
    ev = average_benchmark(prices, D(60))
    assert ev.dropped == ()
    assert ev.total == D(542000)
    assert ev.benchmark == D(108400)


def test_average_benchmark_drops_the_highest_at_exactly_drop_highest_from():
    # n = 6 = drop_highest_from: the highest (130000) is dropped, the lowest is kept.
    # Used: 100000..108000, sum 520000, mean = B = 104000.
    # D(100000) = -4000 × 100 / 104000 = -3.846153846153846153846153846
    #   -> 60 - 0.5 × 3.8461538... = 58.076923... -> 58.08
    # D(108000) = +3.846153846153846153846153846 -> 60 - 3.8461538... = 56.153846... -> 56.15
    # D(130000) = 26000 × 100 / 104000 = 25 -> 60 - 25 = 35
    prices = {
        "A": D(100000),
        "B": D(102000),
        "C": D(104000),
        "D": D(106000),
        "E": D(108000),
        "F": D(130000),
    }
    ev = average_benchmark(prices, D(60))
    assert [(d.bid_id, d.position) for d in ev.dropped] == [("F", "highest")]
    assert ev.used_prices == (D(100000), D(102000), D(104000), D(106000), D(108000))
    assert ev.mean == ev.benchmark == D(104000)
    assert ev.by_bid["A"].deviation == D("-3.846153846153846153846153846")
    assert scores(ev) == {
        "A": D("58.08"),
        "B": D("59.04"),  # D = -1.923076923... -> 60 - 0.96153846... = 59.0384615...
        "C": D("60.00"),
        "D": D("58.08"),  # D = +1.923076923... -> 58.0769230...
        "E": D("56.15"),
        "F": D("35.00"),
    }


def test_average_benchmark_drops_both_ends_at_exactly_drop_lowest_from():
    # n = 7 = drop_lowest_from: 130000 and 70000 are dropped; the mean of the rest is 104000.
    # D(70000) = -34000 × 100 / 104000 = -32.69230769230769230769230769
    #   -> 60 - 16.34615384615384615384615385 = 43.65384615... -> 43.65
    prices = {
        "L": D(70000),
        "A": D(100000),
        "B": D(102000),
        "C": D(104000),
        "D": D(106000),
        "E": D(108000),
        "H": D(130000),
    }
    ev = average_benchmark(prices, D(60))
    assert [(d.bid_id, d.position) for d in ev.dropped] == [("H", "highest"), ("L", "lowest")]
    assert ev.benchmark == D(104000)
    assert ev.by_bid["L"].score == D("43.65")
    assert ev.by_bid["H"].score == D("35.00")


def test_average_benchmark_six_bids_with_drop_lowest_from_six_drop_both():
    prices = {k: D(v) for k, v in zip("ABCDEF", (70, 100, 102, 104, 106, 130), strict=True)}
    params = AverageBenchmarkParams(drop_highest_from=6, drop_lowest_from=6)
    ev = average_benchmark(prices, D(60), params)
    assert {d.bid_id for d in ev.dropped} == {"A", "F"}
    assert ev.mean == D(103)


def test_average_benchmark_with_k():
    # mean = 100000; B = 100000 × (1 - 0.05) = 95000.
    # D(95000) = 0 -> 60; D(100000) = 5000 × 100 / 95000 = 5.263157894736842105263157895
    #   -> 54.73684210526315789473684210 -> 54.74;
    # D(105000) = 10.52631578947368421052631579 -> 49.47368421... -> 49.47
    params = AverageBenchmarkParams(k=D("-0.05"))
    ev = average_benchmark({"A": D(95000), "B": D(100000), "C": D(105000)}, D(60), params)
    assert ev.benchmark == D("95000.00")
    assert scores(ev) == {"A": D("60.00"), "B": D("54.74"), "C": D("49.47")}


def test_average_benchmark_rounds_half_up_at_the_boundary():
    # mean = B = 100000.  D(97730) = -2.27 -> 60 - 0.5 × 2.27 = 58.865 -> 58.87 (half even:
    # 58.86).  D(102270) = +2.27 -> 57.73.
    ev = average_benchmark({"A": D(97730), "B": D(100000), "C": D(102270)}, D(60))
    assert ev.by_bid["A"].raw_score == D("58.865")
    assert ev.by_bid["A"].score == D("58.87")
    assert ev.by_bid["C"].score == D("57.73")


def test_average_benchmark_never_below_zero():
    # mean = 500 / 3 = 166.666...; D(300) = 80 -> 10 - 80 < 0 -> 0.
    ev = average_benchmark({"A": D(100), "B": D(100), "C": D(300)}, D(10))
    assert ev.by_bid["C"].raw_score == 0
    assert ev.by_bid["C"].score == D("0.00")


def test_average_benchmark_one_bid_gets_max():
    ev = average_benchmark({"A": D("123.45")}, D(60))
    assert ev.by_bid["A"].score == D("60.00")


# --- lowest_evaluated_price -------------------------------------------------------------------


def test_lowest_evaluated_price_adds_adjustments():
    # A: 100000 + 5000 - 1000 = 104000; B: 102000, no adjustment.
    ev = lowest_evaluated_price(
        {"A": D(100000), "B": D(102000)},
        {"A": [Adjustment("longer delivery", D(5000)), Adjustment("spares", D(-1000))]},
    )
    assert ev.by_bid["A"].evaluated_price == D(104000)
    assert ev.by_bid["A"].adjustments == D(4000)
    assert ev.by_bid["B"].evaluated_price == D(102000)
    assert all(b.score is None for b in ev.bids)


# --- abnormally low ---------------------------------------------------------------------------


def test_abnormally_low_against_mean_of_others_and_next_lowest():
    # A = 50: others' mean = (100 + 100 + 100) / 3 = 100 -> 50 % below (>= 40: flagged);
    # next lowest 100 -> 50 % below (>= 30: flagged).
    flags = abnormally_low_flags({"A": D(50), "B": D(100), "C": D(100), "D": D(100)})
    assert [(f.code, f.params["bid"], f.params["pct_below"]) for f in flags] == [
        ("abnormally_low_vs_mean", "A", "50"),
        ("abnormally_low_vs_next", "A", "50"),
    ]


def test_abnormally_low_thresholds_are_inclusive_and_configurable():
    from evaluation.model import AbnormallyLowRule

    # A = 70, next = 100: exactly 30 % below the next lowest -> flagged; mean of others 100
    # -> 30 % < 40 -> not flagged on the mean.
    flags = abnormally_low_flags({"A": D(70), "B": D(100), "C": D(100)})
    assert [f.code for f in flags] == ["abnormally_low_vs_next"]
    off = AbnormallyLowRule(below_mean_of_others_pct=None, below_next_lowest_pct=None)
    assert abnormally_low_flags({"A": D(1), "B": D(100)}, off) == []
    assert abnormally_low_flags({"A": D(1)}) == []


# --- properties -------------------------------------------------------------------------------

money = st.decimals(min_value=D("1.00"), max_value=D("100000000.00"), places=2)
points = st.decimals(min_value=D("0"), max_value=D("100"), places=2)
price_maps = st.lists(money, min_size=1, max_size=12).map(
    lambda ps: {f"B{i}": p for i, p in enumerate(ps)}
)


def _pairs(prices):
    items = list(prices.items())
    return [(a, b) for a in items for b in items if a[1] < b[1]]


@given(price_maps, points)
def test_lowest_price_benchmark_properties(prices, max_points):
    ev = lowest_price_benchmark(prices, max_points)
    for b in ev.bids:
        assert D(0) <= b.score <= max_points
        if b.price == min(prices.values()):
            assert b.raw_score == max_points
    for (lo, _), (hi, _) in _pairs(prices):  # a lower price never scores less
        assert ev.by_bid[lo].raw_score >= ev.by_bid[hi].raw_score
        assert ev.by_bid[lo].score >= ev.by_bid[hi].score


@given(price_maps, points)
def test_highest_price_properties(prices, max_points):
    ev = highest_price(prices, max_points)
    for b in ev.bids:
        assert D(0) <= b.score <= max_points
        if b.price == max(prices.values()):
            assert b.raw_score == max_points
    for (lo, _), (hi, _) in _pairs(prices):  # a higher price never scores less
        assert ev.by_bid[lo].score <= ev.by_bid[hi].score


average_params = st.builds(
    AverageBenchmarkParams,
    drop_highest_from=st.integers(3, 9),
    drop_lowest_from=st.integers(3, 9),
    k=st.decimals(min_value=D("-0.2"), max_value=D("0.2"), places=3),
    above_per_pct=st.decimals(min_value=D("0"), max_value=D("3"), places=2),
    below_per_pct=st.decimals(min_value=D("0"), max_value=D("3"), places=2),
)


@settings(max_examples=200)
@given(price_maps, points, average_params)
def test_average_benchmark_properties(prices, max_points, params):
    ev = average_benchmark(prices, max_points, params)
    n = len(prices)
    assert len(ev.used_prices) == n - (n >= params.drop_highest_from) - (
        n >= params.drop_lowest_from
    )
    if n >= params.drop_highest_from:
        assert ev.dropped[0].price == max(prices.values())
    b = ev.benchmark
    for bid in ev.bids:
        assert D(0) <= bid.score <= max_points
        if bid.price == b:
            assert bid.raw_score == max_points  # the bid at the benchmark gets the maximum
    for (lo, _), (hi, _) in _pairs(prices):
        # Rising towards B from below never loses points; moving away above B never gains.
        if prices[hi] <= b:
            assert ev.by_bid[lo].raw_score <= ev.by_bid[hi].raw_score
        if prices[lo] >= b:
            assert ev.by_bid[lo].raw_score >= ev.by_bid[hi].raw_score


@given(st.lists(money, min_size=1, max_size=12))
def test_trimming_keeps_the_middle(prices):
    params = AverageBenchmarkParams()
    valid = sorted((f"B{i}", p) for i, p in enumerate(prices))
    valid.sort(key=lambda item: (item[1], item[0]))
    used, dropped = trim_for_average(valid, params)
    assert len(used) + len(dropped) == len(prices)
    assert len(used) >= 1
    for d in dropped:
        if d.position == "highest":
            assert all(d.price >= p for _, p in used)
        else:
            assert all(d.price <= p for _, p in used)


@given(
    st.lists(
        st.tuples(money, st.lists(st.decimals(-1000, 1000, places=2), max_size=3)),
        min_size=1,
        max_size=10,
    )
)
def test_lowest_evaluated_price_properties(bids):
    prices = {f"B{i}": p for i, (p, _) in enumerate(bids)}
    adjustments = {
        f"B{i}": [Adjustment("a", amount) for amount in adj] for i, (_, adj) in enumerate(bids)
    }
    ev = lowest_evaluated_price(prices, adjustments)
    for i, (price, adj) in enumerate(bids):
        assert ev.by_bid[f"B{i}"].evaluated_price == price + sum(adj, D(0))
        assert ev.by_bid[f"B{i}"].score is None
