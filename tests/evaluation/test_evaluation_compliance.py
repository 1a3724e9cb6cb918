"""Compliance: ceiling and reserve prices, fields, documents, bid bond, checks, template rules,
the panel's overrule, and the message table."""

from __future__ import annotations

import re
import string
from decimal import Decimal as D
from pathlib import Path

import pytest

import evaluation
from evaluation.compliance import check_bid
from evaluation.messages import MESSAGES
from evaluation.model import (
    Bid,
    ComplianceOverride,
    ComplianceRules,
    Direction,
    FieldRule,
    PriceMethod,
    PriceRule,
    Tender,
)

from .helpers import bid_result, example, price_only_document, scored


def tender(bid: Bid, **kwargs) -> Tender:
    kwargs.setdefault("direction", Direction.LOWEST_WINS)
    kwargs.setdefault("price", PriceRule(PriceMethod.LOWEST_PRICE_BENCHMARK, D(100)))
    return Tender(bids=(bid,), **kwargs)


def codes(bid: Bid, **kwargs) -> list[str]:
    return [r.code for r in check_bid(bid, tender(bid, **kwargs)).reasons]


def test_price_exactly_at_the_ceiling_is_compliant_one_cent_above_is_not():
    doc = price_only_document(["100000.00", "100000.01", "90000.00"], ceiling_price="100000.00")
    result = scored(doc)
    assert bid_result(result, "B1")["compliant"] is True
    b2 = bid_result(result, "B2")
    assert b2["compliant"] is False
    assert b2["reasons"] == [
        {
            "code": "above_ceiling",
            "params": {"price": "100000.01", "ceiling_price": "100000.00"},
            "message": "Price 100000.01 is above the ceiling price 100000.00.",
        }
    ]
    assert b2["price_score"] is None and b2["rank"] is None


def test_reserve_price_for_sales():
    doc = price_only_document(
        ["500000.00", "499999.99", "600000.00"],
        method="highest_price",
        direction="highest_wins",
        reserve_price="500000.00",
    )
    result = scored(doc)
    assert [b["compliant"] for b in result["bids"]] == [True, False, True]
    assert bid_result(result, "B2")["reasons"][0]["code"] == "below_reserve"


def test_required_and_scored_fields():
    rules = ComplianceRules(required_fields=("delivery_days",))
    bid = Bid("B1", D(1), fields={"warranty": "x"})
    assert codes(bid, compliance_rules=rules) == ["required_field_missing"]
    doc = example()
    doc["bids"][0]["fields"]["delivery_days"] = "soon"
    del doc["bids"][1]["fields"]["warranty_months"]
    result = scored(doc)
    assert bid_result(result, "B1")["reasons"][0]["message"] == (
        "Field 'delivery_days' must be a decimal number; the bid has 'soon'."
    )
    assert bid_result(result, "B2")["reasons"][0]["message"] == (
        "Required field 'warranty_months' is missing."
    )


def test_documents_bond_and_checks():
    rules = ComplianceRules(
        required_documents=("licence", "iso9001"),
        bid_bond=D("2000.00"),
        required_checks=("signed", "anonymity"),
    )
    bid = Bid(
        "B1",
        D(1),
        documents=("licence",),
        bid_bond=D("1999.99"),
        compliance={"signed": True, "bond_account": False, "decrypted": "file damaged"},
    )
    verdict = check_bid(bid, tender(bid, compliance_rules=rules))
    assert not verdict.compliant
    assert [r.message for r in verdict.reasons] == [
        "Qualification document 'iso9001' is missing.",
        "The bid bond 1999.99 is less than the required 2000.00.",
        "Check 'anonymity' required by the tender was not recorded.",
        "Check 'bond_account' failed.",
        "Check 'decrypted' failed: file damaged",
    ]
    no_bond = Bid("B1", D(1), documents=("licence", "iso9001"))
    assert "bid_bond_missing" in codes(no_bond, compliance_rules=rules)


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        (FieldRule("days", "<=", "90"), "90", True),
        (FieldRule("days", "<=", "90"), "90.5", False),
        (FieldRule("days", "<", "90"), "90", False),
        (FieldRule("days", ">=", "12"), "12.0", True),
        (FieldRule("days", ">", "12"), "12", False),
        (FieldRule("days", "==", "30"), "30.00", True),
        (FieldRule("days", "!=", "30"), "31", True),
        (FieldRule("brand", "==", "acme"), "acme", True),
        (FieldRule("brand", "!=", "acme"), "acme", False),
        (FieldRule("brand", "in", ("acme", "zeta")), "zeta", True),
        (FieldRule("brand", "in", ("acme", "zeta")), "other", False),
        (FieldRule("local", "==", True), True, True),
        (FieldRule("local", "==", True), False, False),
    ],
)
def test_template_field_rules(rule, value, ok):
    bid = Bid("B1", D(1), fields={rule.field: value})
    got = codes(bid, compliance_rules=ComplianceRules(field_rules=(rule,)))
    assert got == ([] if ok else ["field_rule_failed"])


def test_field_rule_message_and_missing_field_reported_once():
    rules = ComplianceRules(
        required_fields=("days",),
        field_rules=(FieldRule("days", "<=", "90"), FieldRule("brand", "in", ("a", "b"))),
    )
    assert codes(Bid("B1", D(1)), compliance_rules=rules) == [
        "required_field_missing",
        "required_field_missing",
    ]
    verdict = check_bid(
        Bid("B1", D(1), fields={"days": "120", "brand": "c"}),
        tender(Bid("B1", D(1)), compliance_rules=rules),
    )
    assert [r.message for r in verdict.reasons] == [
        "Field 'days' is '120'; the tender requires <= 90.",
        "Field 'brand' is 'c'; the tender requires one of a, b.",
    ]


def test_panel_overrule_both_ways_is_recorded():
    over = Bid(
        "B1",
        D("100.01"),
        compliance_override=ComplianceOverride(True, "Ceiling typo corrected by addendum 2"),
    )
    verdict = check_bid(over, tender(over, ceiling_price=D(100)))
    assert verdict.compliant and not verdict.automatic_compliant
    assert [r.code for r in verdict.reasons] == ["above_ceiling", "panel_overruled_compliant"]
    under = Bid("B1", D(1), compliance_override=ComplianceOverride(False, "Forged licence"))
    verdict = check_bid(under, tender(under))
    assert not verdict.compliant and verdict.automatic_compliant
    assert verdict.reasons[-1].message == (
        "The panel overruled the automatic verdict and found the bid non-compliant: Forged licence"
    )
    same = Bid("B1", D(1), compliance_override=ComplianceOverride(True, "Checked"))
    assert [r.code for r in check_bid(same, tender(same)).reasons] == ["panel_confirmed"]


def test_every_emitted_code_has_a_message():
    # Codes are string literals passed to Reason, Flag, Outcome or render, or assigned to code.
    source = "\n".join(p.read_text() for p in Path(evaluation.__file__).parent.glob("*.py"))
    found = set(re.findall(r'(?:Reason|Flag)\(\s*"([a-z_]+)"', source))
    found |= set(re.findall(r'code(?:, extra)? = "([a-z_]+)"', source))
    found |= set(re.findall(r'Outcome\(\s*"[a-z_]+",\s*"([a-z_]+)"', source))
    found |= set(re.findall(r'render\(\s*"([a-z_]+)"', source))
    assert len(found) > 25
    assert found <= set(MESSAGES), found - set(MESSAGES)
    for code, text in MESSAGES.items():
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name]
        assert text.strip() and all(name.isidentifier() for name in names), code


def test_a_bid_without_a_price_is_never_compliant_and_the_others_are_scored():
    # The opening found the bidder's commercial part unreadable: no price to score.
    doc = price_only_document(["100.00", "110.00", "120.00"], ceiling_price="1000.00")
    del doc["bids"][1]["price"]
    doc["bids"][1]["compliance"] = {"commercial_part_valid": "malformed commercial part: x"}
    doc["bids"][1]["compliance_override"] = {"compliant": True, "reason": "Looks fine."}
    result = scored(doc)
    b2 = bid_result(result, "B2")
    assert b2["compliant"] is False and b2["price"] is None and b2["rank"] is None
    assert [r["code"] for r in b2["reasons"]][:1] == ["price_missing"]
    assert "check_failed_with_reason" in [r["code"] for r in b2["reasons"]]
    assert result["outcome"]["status"] == "ranked"
    assert bid_result(result, "B1")["rank"] == 1
    assert evaluation.verify(evaluation.score(doc)) == []
