"""Ranking: order, tie-breaks (price, technical, recorded draw), unresolved ties, candidates."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from evaluation.model import Direction
from evaluation.ranking import Contender, rank_bids


def c(bid, total, price="100", technical="50", draw=None) -> Contender:
    return Contender(bid, D(price), D(technical), total=D(total), draw=draw)


def test_order_by_total_and_top_three_candidates():
    r = rank_bids([c("A", "80"), c("B", "90"), c("C", "70"), c("D", "85")], Direction.LOWEST_WINS)
    assert r.order == ("B", "D", "A", "C")
    assert r.ranks == {"B": 1, "D": 2, "A": 3, "C": 4}
    assert r.candidates == ("B", "D", "A")
    assert r.ties == () and not r.needs_draw


def test_tie_broken_by_better_price_in_each_direction():
    bids = [c("A", "90", price="100"), c("B", "90", price="99")]
    low = rank_bids(bids, Direction.LOWEST_WINS)
    assert low.order == ("B", "A")
    assert low.ties[0].resolved_by == ("price",)
    high = rank_bids(bids, Direction.HIGHEST_WINS)
    assert high.order == ("A", "B")


def test_tie_broken_by_technical_then_draw():
    bids = [
        c("A", "90", technical="40"),
        c("B", "90", technical="45"),
        c("C", "90", technical="40", draw=2),
        c("D", "90", technical="40", draw=1),
    ]
    # A has no draw: A, C and D stay level on total, price and technical.
    r = rank_bids(bids, Direction.LOWEST_WINS)
    assert r.order[0] == "B"
    assert r.ranks == {"B": 1, "A": 2, "C": 2, "D": 2}
    assert r.ties[0].needs_draw == (("A", "C", "D"),)
    assert r.needs_draw and r.candidates == ()
    bids[0] = c("A", "90", technical="40", draw=3)
    r = rank_bids(bids, Direction.LOWEST_WINS)
    assert r.order == ("B", "D", "C", "A")
    assert r.ranks == {"B": 1, "D": 2, "C": 3, "A": 4}
    assert r.ties[0].resolved_by == ("technical", "draw")
    assert r.candidates == ("B", "D", "C")


def test_tie_below_the_candidates_does_not_block():
    bids = [c("A", "99"), c("B", "98"), c("C", "97"), c("D", "50"), c("E", "50")]
    r = rank_bids(bids, Direction.LOWEST_WINS)
    assert r.ranks["D"] == r.ranks["E"] == 4
    assert not r.needs_draw
    assert r.candidates == ("A", "B", "C")
    assert r.ties[0].needs_draw == (("D", "E"),)


def test_same_draw_number_does_not_resolve():
    r = rank_bids([c("A", "9", draw=1), c("B", "9", draw=1)], Direction.LOWEST_WINS)
    assert r.needs_draw and r.ranks == {"A": 1, "B": 1}


def test_by_evaluated_price_lowest_first():
    bids = [
        Contender("A", D(100), D(0), evaluated_price=D(105)),
        Contender("B", D(101), D(0), evaluated_price=D(103)),
        Contender("C", D(99), D(0), evaluated_price=D(103)),
    ]
    r = rank_bids(bids, Direction.LOWEST_WINS, by_evaluated_price=True)
    assert r.order == ("C", "B", "A")  # C and B level at 103: C has the lower price
    assert r.ties[0].on == "evaluated_price"


contenders = st.lists(
    st.builds(
        lambda total, price, tech, draw: (total, price, tech, draw),
        st.sampled_from(["70", "80", "80.5", "90"]),
        st.sampled_from(["100", "101", "102"]),
        st.sampled_from(["40", "45"]),
        st.one_of(st.none(), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=9,
)


@given(contenders, st.randoms(use_true_random=False), st.sampled_from(list(Direction)))
def test_ranking_is_permutation_invariant(rows, rnd, direction):
    bids = [c(f"B{i}", *row) for i, row in enumerate(rows)]
    shuffled = list(bids)
    rnd.shuffle(shuffled)
    first, second = rank_bids(bids, direction), rank_bids(shuffled, direction)
    assert first == second


@given(contenders, st.sampled_from(list(Direction)))
def test_ranking_respects_the_keys(rows, direction):
    bids = {f"B{i}": c(f"B{i}", *row) for i, row in enumerate(rows)}
    r = rank_bids(list(bids.values()), direction)
    assert sorted(r.order) == sorted(bids)
    for better, worse in zip(r.order, r.order[1:], strict=False):
        a, b = bids[better], bids[worse]
        assert a.total >= b.total
        assert r.ranks[better] <= r.ranks[worse]
        if r.ranks[better] == r.ranks[worse]:  # still level: same total, price and technical
            assert (a.total, a.price, a.technical) == (b.total, b.price, b.technical)
