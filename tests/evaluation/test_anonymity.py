"""The dark-bid scan finds a bidder's identity however it is written, and nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluation.anonymity import Identity, bidder_identities, scan_text

BIDDER = bidder_identities(
    "Hangzhou Bridges Co., Ltd.", "91330100MA2A000003", aliases=["杭州桥梁有限公司", "HZB"]
)


def kinds(text: str) -> list[str]:
    return [hit.kind for hit in scan_text(text, BIDDER)]


def test_full_and_short_names_are_found_across_breaks_and_case():
    assert kinds("Our firm, HANGZHOU\nBRIDGES CO LTD, built ...") == ["name"]
    assert kinds("as Hangzhou Bridges did in 2019") == ["name"]


def test_registration_number_with_spacing_and_full_width_digits():
    assert kinds("licence ９１３３ 0100 MA2A 000003 attached") == ["registration_number"]


def test_chinese_alias_and_its_short_form():
    assert kinds("本项目由杭州桥梁有限公司负责") == ["alias"]
    assert kinds("杭州桥梁曾承建") == ["alias"]


def test_short_identities_do_not_match_by_chance():
    # "HZB" is three letters: kept; two-letter forms are never searched.
    assert kinds("the HZB method") == ["alias"]
    assert scan_text("a b c", [Identity("alias", "ab")]) == []


def test_hits_carry_a_short_context():
    [hit] = scan_text("x" * 100 + " Hangzhou Bridges " + "y" * 100, BIDDER)
    assert "Hangzhou Bridges" in hit.context and len(hit.context) < 100


def test_clean_text_has_no_hit():
    assert kinds("We propose a cable-stayed design with a 30-year warranty.") == []


@given(
    st.text(alphabet="abcdefghij ,.\n", max_size=200),
    st.text(alphabet="abcdefghij ,.\n", max_size=200),
)
def test_an_inserted_name_is_always_found(before, after):
    text = before + " Hangzhou  Bridges " + after
    assert "name" in kinds(text)


@given(st.text(alphabet="abcdefghij ,.\n0", max_size=300))
def test_text_without_the_identity_never_hits(text):
    assert kinds(text) == []


def test_korean_company_form_prefix_is_dropped():
    korean = bidder_identities("주식회사 한일엔지니어링", "91330100MA2B000008")
    assert [h.kind for h in scan_text("한일엔지니어링의 시공 실적", korean)] == ["name"]
