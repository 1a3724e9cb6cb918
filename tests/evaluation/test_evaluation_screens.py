"""Price screens, same-source and market signals for supervisors (red flags)."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.__main__ import main
from evaluation.market import (
    Competition,
    SheetDeviation,
    Sitting,
    cover_bidding,
    expert_repeated_entity,
    expert_score_deviation,
    single_bid_shares,
    winner_rotation,
)
from evaluation.messages import MESSAGES
from evaluation.screens import (
    ScreenThresholds,
    coefficient_of_variation,
    diffp,
    kurtosis,
    margin_outliers,
    normalised_relative_distance,
    quartiles,
    relative_distance,
    screen_prices,
    skewness,
    statistics,
)
from evaluation.sources import (
    SourceRecord,
    same_source_flags,
    sketch_similarity,
    text_sketch,
)


def ds(*values: str) -> list[D]:
    return [D(v) for v in values]


def codes(result) -> list[str]:
    flags = result.flags if hasattr(result, "flags") else result
    return [f.code for f in flags]


def close(value: D | None, expected: str, places: int = 6) -> bool:
    assert value is not None
    return abs(value - D(expected)) < D(10) ** -places


# --- statistics against hand computations ---------------------------------------------------


def test_statistics_hand_computed():
    # Bids 10, 12, 14, 20 (n = 4). mean 14; deviations -4, -2, 0, 6.
    # sum of squares 16 + 4 + 0 + 36 = 56: s = sqrt(56 / 3) = 4.3204938, CV = s / 14 = 0.3086067
    # m2 = 56 / 4 = 14; cubes -64 - 8 + 0 + 216 = 144, m3 = 36; g1 = 36 / 14^1.5 = 0.6872431;
    # G1 = sqrt(4 * 3) / (4 - 2) * g1 = 1.7320508 * 0.6872431 = 1.1903401
    # fourth powers 256 + 16 + 0 + 1296 = 1568, m4 = 392, m4 / m2^2 = 2;
    # G2 = (n-1) / ((n-2)(n-3)) * ((n+1) * 2 - 3(n-1)) = 3 / 2 * (10 - 9) = 1.5
    # DIFFP = (12 - 10) / 10 = 0.2
    # losing bids 12, 14, 20: mean 46/3, squares 100/9 + 16/9 + 196/9 = 312/9, / 2 = 52/3,
    # s_losing = sqrt(17.333...) = 4.1633320; RD = 2 / 4.1633320 = 0.4803845
    # RDNOR = (4 - 1) * 2 / (2 + 2 + 6) = 0.6
    prices = ds("14", "20", "10", "12")  # any order
    assert close(coefficient_of_variation(prices), "0.3086067", 7)
    assert close(skewness(prices), "1.1903401", 7)
    assert kurtosis(prices) == D("1.5")
    assert diffp(prices) == D("0.2")
    assert close(relative_distance(prices), "0.4803845", 7)
    assert normalised_relative_distance(prices) == D("0.6")


def test_three_bids_hand_computed():
    # 996, 998, 1006: mean 1000, deviations -4, -2, 6, squares 56: s = sqrt(28) = 5.2915026,
    # CV = 0.0052915; m2 = 56/3, m3 = (-64 - 8 + 216) / 3 = 48;
    # g1 = 48 / (56/3)^1.5 = 48 / 80.6492176 = 0.5951701
    # G1 = sqrt(6) / 1 * g1 = 2.4494897 * 0.5951701 = 1.4578630; kurtosis needs n >= 4.
    prices = ds("996", "998", "1006")
    assert close(coefficient_of_variation(prices), "0.0052915", 7)
    assert close(skewness(prices), "1.457863", 6)
    assert kurtosis(prices) is None
    stats = statistics(prices).to_json()
    assert stats["n"] == 3 and stats["kurtosis"] is None and stats["cv"] == "0.005292"


def test_too_few_bids_give_null():
    stats = statistics(ds("100", "120")).to_json()
    assert stats == {
        "n": 2,
        "cv": None,
        "skewness": None,
        "kurtosis": None,
        "diffp": None,
        "rd": None,
        "rdnor": None,
    }
    assert screen_prices(ds("100", "120")).flags == []


def test_undefined_statistics_are_null_not_errors():
    # Equal prices: no spread, no skewness or kurtosis; equal losing bids: RD undefined.
    stats = statistics(ds("500", "500", "500", "500"))
    assert stats.cv == 0 and stats.skewness is None and stats.kurtosis is None
    assert stats.rd is None and stats.rdnor is None
    assert relative_distance(ds("90", "100", "100")) is None


@pytest.mark.parametrize("bad", [ds("0", "1", "2"), ds("-5", "1", "2"), [D("NaN"), D(1), D(2)]])
def test_non_positive_prices_refused(bad):
    with pytest.raises(ValueError):
        statistics(bad)


def test_quartiles_linear_interpolation():
    # 1..8: positions (8 - 1) * 0.25 = 1.75 -> 2 + 0.75 = 2.75; 5.25 -> 6 + 0.25 = 6.25
    assert quartiles([D(v) for v in range(8, 0, -1)]) == (D("2.75"), D("6.25"))


# --- flags -----------------------------------------------------------------------------------


def test_ordinary_competitive_tender_raises_nothing():
    # CV 0.0883 (above 0.06), RD 1.92 but without a low CV, no equal gaps, no round prices.
    result = screen_prices(
        ds("812000.00", "905500.00", "1003000.00", "951250.00"), ceiling=D("1100000")
    )
    assert result.flags == []


def test_identical_prices_cardinal_r028():
    result = screen_prices(
        ds("903.17", "1004.50", "903.17", "1251.20"), labels=["A", "B", "C", "D"]
    )
    assert codes(result) == ["identical_prices"]
    assert result.flags[0].params == {"bids": "A, C", "price": "903.17", "count": "2"}
    assert result.flags[0].score == 1


def test_low_cv_and_high_rd_cover_bids():
    # 900, then cover bids 1000, 1001, 1002: mean 975.75, CV 0.0498 < 0.06;
    # s_losing = 1, RD = (1000 - 900) / 1 = 100 > 1.
    result = screen_prices(ds("900", "1000.00", "1001.00", "1002.00"))
    assert "low_price_variation" in codes(result)
    assert "high_relative_distance" in codes(result)
    rd = next(f for f in result.flags if f.code == "high_relative_distance")
    assert rd.params["value"] == "100.000000" and rd.threshold == "1" and rd.score == 1


def test_equal_spacing_and_tolerance():
    result = screen_prices(ds("1013.17", "1113.17", "1213.17", "1313.17"))
    assert codes(result) == ["equal_price_spacing"]
    assert result.flags[0].params["gap"] == "100.00"
    # within 1 % of the mean gap (100): still flagged; beyond it, not
    assert codes(screen_prices(ds("1013.17", "1113.17", "1213.67", "1313.17"))) == [
        "equal_price_spacing"
    ]
    assert codes(screen_prices(ds("1013.17", "1113.17", "1223.17", "1313.17"))) == []


def test_bids_just_under_the_ceiling():
    # ceiling 1,000,000, 2 % margin: from 980,000. Three of four bids there.
    result = screen_prices(
        ds("991234.56", "985432.10", "999876.54", "803456.78"), ceiling=D("1000000")
    )
    assert "bids_near_ceiling" in codes(result)
    flag = next(f for f in result.flags if f.code == "bids_near_ceiling")
    assert flag.params["count"] == "3" and flag.params["floor"] == "980000.00"
    assert flag.score == D("0.75")


def test_round_number_clustering():
    result = screen_prices(ds("810000", "1200000", "930000.00", "1012345.67"))
    assert codes(result) == ["round_number_clustering"]
    assert result.flags[0].params["count"] == "3"


def test_cardinal_margins_r024_r058():
    comparable = ds("0.02", "0.03", "0.04", "0.05", "0.05", "0.06", "0.07", "0.08", "0.09", "0.10")
    # Q1 = 0.02 + ... position 9 * 0.25 = 2.25 -> 0.04 + 0.25 * 0.01 = 0.0425;
    # Q3: 6.75 -> 0.07 + 0.75 * 0.01 = 0.0775; IQR 0.035; fences -0.01 and 0.13.
    assert quartiles(comparable) == (D("0.0425"), D("0.0775"))
    assert codes(margin_outliers(D("0.14"), comparable)) == ["heavily_undercut_outlier"]
    assert codes(margin_outliers(D("0.13"), comparable)) == ["heavily_undercut_outlier"]
    assert margin_outliers(D("0.129"), comparable) == []
    assert margin_outliers(D("0.0001"), comparable) == []  # above the low fence -0.01
    tight = ds(*["0.05"] * 4, "0.06", "0.06", "0.07", "0.07", "0.08", "0.08")
    # Q1 0.05, Q3 0.07, IQR 0.02: low fence 0.02
    assert codes(margin_outliers(D("0.01"), tight)) == ["close_margin_outlier"]
    # Too few comparable competitions: nothing
    assert margin_outliers(D("0.5"), comparable[:9]) == []


def test_thresholds_are_configurable_and_checked():
    loose = ScreenThresholds.from_mapping({"cv_below": "0.5", "kurtosis_above": "1"})
    spread = ds("800", "1000", "1250.50")
    assert "low_price_variation" in codes(screen_prices(spread, thresholds=loose))
    assert "high_kurtosis" in codes(screen_prices(ds("10", "12", "14", "20"), thresholds=loose))
    off = ScreenThresholds.from_mapping({"cv_below": None})
    tight = ds("996", "998", "1006.5")
    assert "low_price_variation" not in codes(screen_prices(tight, thresholds=off))
    for bad in ({"cv_bellow": "1"}, {"cv_below": 0.5}, {"min_comparable": 0}, {"iqr_factor": None}):
        with pytest.raises(ValueError):
            ScreenThresholds.from_mapping(bad)


def test_every_emitted_code_has_a_message():
    for code in (
        "identical_prices",
        "low_price_variation",
        "high_relative_distance",
        "high_kurtosis",
        "negative_skewness",
        "high_diffp",
        "high_rdnor",
        "close_margin_outlier",
        "heavily_undercut_outlier",
        "equal_price_spacing",
        "bids_near_ceiling",
        "round_number_clustering",
    ):
        assert code in MESSAGES


# --- properties --------------------------------------------------------------------------------

price_lists = st.lists(st.decimals(min_value=1, max_value=10**9, places=2), min_size=3, max_size=12)
factors = st.decimals(min_value=D("0.01"), max_value=1000, places=2).filter(lambda f: f > 0)


def same(a: D | None, b: D | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= D("1e-18") * max(D(1), abs(a))


@given(price_lists, factors)
def test_scale_invariance(values, factor):
    scaled = [v * factor for v in values]
    for fn in (coefficient_of_variation, skewness, kurtosis, relative_distance, diffp):
        assert same(fn(values), fn(scaled)), fn.__name__


@given(price_lists, st.decimals(min_value=0, max_value=10**6, places=2))
def test_shape_statistics_ignore_a_shift(values, shift):
    # Adding the same amount to every bid moves the mean, not the shape of the distribution.
    shifted = [v + shift for v in values]
    for fn in (skewness, kurtosis, relative_distance, normalised_relative_distance):
        assert same(fn(values), fn(shifted)), fn.__name__


@given(price_lists)
def test_order_invariance_and_bounds(values):
    backward = list(reversed(values))
    forward_result, backward_result = screen_prices(values), screen_prices(backward)
    assert forward_result.statistics == backward_result.statistics
    assert codes(forward_result) == codes(backward_result)
    stats = statistics(values)
    assert stats.cv >= 0 and stats.diffp >= 0
    if stats.rdnor is not None:
        assert 0 <= stats.rdnor <= len(values) - 1
    for flag in screen_prices(values).flags:
        assert 0 <= flag.score <= 1


# --- same-source signals -----------------------------------------------------------------------

TEXT = (
    "Method statement. The contractor will mobilise within ten days, set up the site office "
    "and fence the works area, then excavate the trench for the culvert in stages of twenty "
    "metres, each shored and inspected before concrete is poured. Quality plan: every batch "
    "of concrete is tested for slump and three cubes are crushed at seven and 28 days. "
)


def test_text_sketch_similarity():
    a = text_sketch(TEXT * 3)
    # Layout and case do not matter; another text is far.
    assert sketch_similarity(a, text_sketch((TEXT * 3).upper().replace(" ", "\n  "))) == 1
    other = text_sketch(
        "Our team has built forty bridges. We propose precast beams, a crane on the north "
        "bank, night work to avoid traffic and a programme of nine weeks with two crews. " * 3
    )
    assert sketch_similarity(a, other) < D("0.1")
    edited = text_sketch(TEXT * 3 + "An extra sentence added by the second bidder.")
    assert sketch_similarity(a, edited) >= D("0.8")


def test_colluding_group_is_flagged():
    # Three bids of one group: the same technical file, uploads from one address and browser,
    # equally spaced prices; a fourth, independent bid.
    records = [
        SourceRecord("A", "f" * 64, text_sketch(TEXT * 3), "J. Wang", "Word", "PDF 1", "h1", "u1"),
        SourceRecord("B", "f" * 64, text_sketch(TEXT * 3), "J. Wang", "Word", "PDF 1", "h1", "u1"),
        SourceRecord("C", "c" * 64, text_sketch(TEXT * 3 + " Signed."), "", "", "", "h1", "u2"),
        SourceRecord("D", "d" * 64, text_sketch("Independent plan. " * 40), "Li", "", "", "h9"),
    ]
    flags = same_source_flags(records)
    found = {(f.code, f.params["bids"]) for f in flags}
    assert ("identical_technical_files", "A, B") in found
    assert ("similar_technical_texts", "A, C") in found
    assert ("similar_technical_texts", "B, C") in found
    assert ("same_pdf_author", "A, B") in found
    assert ("same_pdf_software", "A, B") in found
    assert ("same_submission_device", "A, B") in found
    assert ("same_submission_address", "A, B, C") in found  # C: same address, other browser
    assert not any("D" in bids for _, bids in found)
    prices = screen_prices(ds("1013.17", "1113.17", "1213.17", "1450.99"))
    assert codes(prices) == []  # D breaks the spacing of the full list
    group = screen_prices(ds("1013.17", "1113.17", "1213.17"))
    assert codes(group) == ["equal_price_spacing"]


def test_independent_bidders_raise_no_source_flag():
    records = [
        SourceRecord("A", "a" * 64, text_sketch(TEXT * 2), "Zhang", "Word", "Acrobat", "h1", "u"),
        SourceRecord("B", "b" * 64, text_sketch("Another plan. " * 30), "Li", "", "", "h2", "u"),
    ]
    assert same_source_flags(records) == []


# --- market signals ----------------------------------------------------------------------------


def comp(key, bidders, winner, centre="C1", entity="E1"):
    return Competition(key, frozenset(bidders), winner, centre, entity)


def test_cover_bidding_and_rotation():
    history = [
        comp("t1", "WXZ", "W"),
        comp("t2", "WX", "W"),
        comp("t3", "WXY", "W"),
        comp("t4", "YZ", "Y"),
    ]
    flags = cover_bidding(history)
    assert [(f.params["company"], f.params["winner"], f.params["losses"]) for f in flags] == [
        ("X", "W", "3")
    ]
    rotation = [comp("r1", "PQR", "P"), comp("r2", "PQR", "Q"), comp("r3", "PQR", "R")]
    assert codes(winner_rotation(rotation)) == ["winner_rotation"]
    # one member winning every time is not a rotation
    assert winner_rotation([comp(f"s{i}", "PQR", "P") for i in range(3)]) == []


def test_single_bid_share_by_centre():
    history = [comp(f"t{i}", "A" if i < 2 else "AB", "A", centre="North") for i in range(6)]
    counts = {c.key: len(c.bidders) for c in history}
    flags = single_bid_shares(history, by="centre", bid_counts=counts)
    assert [(f.params["subject"], f.params["share"]) for f in flags] == [("North", "0.33")]
    assert single_bid_shares(history[2:], by="centre", bid_counts=counts) == []  # too few
    with pytest.raises(ValueError):
        single_bid_shares(history, by="month", bid_counts=counts)


def test_expert_signals():
    sittings = [Sitting("ex1", f"p{i}", "Water Bureau") for i in range(4)]
    sittings += [Sitting("ex2", "p0", "Water Bureau"), Sitting("ex1", "q", "Roads")]
    flags = expert_repeated_entity(sittings)
    assert [(f.params["expert"], f.params["entity"], f.params["count"]) for f in flags] == [
        ("ex1", "Water Bureau", "4")
    ]
    sheets = [SheetDeviation("ex1", D(80), D(60), D(100)) for _ in range(5)]
    # ex2 deviates +10 and -10 in turn: no systematic direction
    sheets += [
        SheetDeviation("ex2", D(70), D(60), D(100)),
        SheetDeviation("ex2", D(50), D(60), D(100)),
    ] * 3
    flags = expert_score_deviation(sheets)
    assert [(f.params["expert"], f.params["mean_deviation"]) for f in flags] == [("ex1", "0.20")]


# --- the command line --------------------------------------------------------------------------


def test_cli_screens(tmp_path, capsys):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": ["1000.00", "1100.00", "1200.00", "1300.00"]}))
    assert main(["screens", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 4 and out["kurtosis"] == "-1.200000" and out["rdnor"] == "1.000000"
    assert [f["rule"] for f in out["flags"]] == ["equal_price_spacing", "round_number_clustering"]
    assert out["flags"][0]["threshold"] == "0.01" and out["flags"][0]["score"] == "1.000000"


@pytest.mark.parametrize(
    "content",
    [
        '{"prices": [812000.5, 1]}',
        '{"prices": []}',
        '{"prices": ["0", "1", "2"]}',
        '{"prices": ["1e5", "2", "3"]}',
        '{"price": ["1"]}',
        '["1", "2"]',
        '{"prices": ["1", "2", "3"], "ceiling": "-1"}',
        "not json",
    ],
)
def test_cli_screens_bad_input(tmp_path, capsys, content):
    path = tmp_path / "prices.json"
    path.write_text(content)
    assert main(["screens", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "error:" in captured.err
