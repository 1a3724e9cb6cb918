"""Automatic compliance review of opened bids.

Only compliant bids take part in scoring.  A bid fails when its price is above the ceiling
(lowest_wins) or below the reserve (highest_wins), a required or scored field is missing or
not a number, a qualification document is missing, the bid bond is missing or short, a
check the tender requires was not recorded, a recorded check failed, or a template rule on a
field is broken.  Each failure is a ``Reason`` (code + params); the English text comes from
``evaluation.messages.MESSAGES`` so the app can translate it by code.  A panel decision
recorded as ``compliance_override`` has the last word and is listed among the reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from evaluation.decimals import fmt, is_decimal_string, parse_decimal
from evaluation.messages import Reason
from evaluation.model import Bid, FieldRule, Tender

_NUMERIC_OPS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class ComplianceVerdict:
    bid_id: str
    compliant: bool
    automatic_compliant: bool
    reasons: tuple[Reason, ...]


def check_bid(bid: Bid, tender: Tender) -> ComplianceVerdict:
    """The compliance verdict for one bid, with every reason it failed."""
    reasons: list[Reason] = []
    if bid.price is None:
        reasons.append(Reason("price_missing", {}))
    elif tender.ceiling_price is not None and bid.price > tender.ceiling_price:
        reasons.append(
            Reason(
                "above_ceiling",
                {"price": fmt(bid.price), "ceiling_price": fmt(tender.ceiling_price)},
            )
        )
    if (
        bid.price is not None
        and tender.reserve_price is not None
        and bid.price < tender.reserve_price
    ):
        reasons.append(
            Reason(
                "below_reserve",
                {"price": fmt(bid.price), "reserve_price": fmt(tender.reserve_price)},
            )
        )
    reasons.extend(_field_reasons(bid, tender))
    rules = tender.compliance_rules
    present = set(bid.documents)
    reasons.extend(
        Reason("qualification_document_missing", {"document": doc})
        for doc in rules.required_documents
        if doc not in present
    )
    if rules.bid_bond is not None:
        if bid.bid_bond is None:
            reasons.append(Reason("bid_bond_missing", {"required": fmt(rules.bid_bond)}))
        elif bid.bid_bond < rules.bid_bond:
            reasons.append(
                Reason(
                    "bid_bond_insufficient",
                    {"amount": fmt(bid.bid_bond), "required": fmt(rules.bid_bond)},
                )
            )
    reasons.extend(
        Reason("check_not_recorded", {"check": check})
        for check in rules.required_checks
        if check not in bid.compliance
    )
    for check, outcome in bid.compliance.items():
        if outcome is False:
            reasons.append(Reason("check_failed", {"check": check}))
        elif isinstance(outcome, str):
            reasons.append(Reason("check_failed_with_reason", {"check": check, "reason": outcome}))
    for rule in rules.field_rules:
        reason = _field_rule_reason(bid, rule)
        # A missing field is reported once, however many rules and criteria use it.
        if reason is not None and reason not in reasons:
            reasons.append(reason)

    automatic = not reasons
    compliant = automatic
    override = bid.compliance_override
    if override is not None:
        compliant = override.compliant
        if override.compliant == automatic:
            code = "panel_confirmed"
        elif override.compliant:
            code = "panel_overruled_compliant"
        else:
            code = "panel_overruled_non_compliant"
        reasons.append(Reason(code, {"reason": override.reason}))
    if bid.price is None:
        compliant = False  # no price, nothing to score: no decision can make it compliant
    return ComplianceVerdict(bid.id, compliant, automatic, tuple(reasons))


def check_bids(tender: Tender) -> dict[str, ComplianceVerdict]:
    """Verdicts for every bid of the tender, keyed by bid id (in the tender's bid order)."""
    return {bid.id: check_bid(bid, tender) for bid in tender.bids}


def scored_fields(tender: Tender) -> list[str]:
    """Fields every bid must carry: the required ones and those a commercial criterion scores."""
    names = list(tender.compliance_rules.required_fields)
    names += [c.field for c in tender.commercial_criteria if c.field not in names]
    return names


def _field_reasons(bid: Bid, tender: Tender) -> list[Reason]:
    reasons = []
    numeric = {c.field for c in tender.commercial_criteria}
    for name in scored_fields(tender):
        if name not in bid.fields:
            reasons.append(Reason("required_field_missing", {"field": name}))
        elif name in numeric and not is_decimal_string(bid.fields[name]):
            reasons.append(
                Reason("field_not_decimal", {"field": name, "value": _text(bid.fields[name])})
            )
    return reasons


def _field_rule_reason(bid: Bid, rule: FieldRule) -> Reason | None:
    if rule.field not in bid.fields:
        return Reason("required_field_missing", {"field": rule.field})
    actual = bid.fields[rule.field]
    if isinstance(rule.value, tuple):  # op "in"
        ok = _member(actual, rule.value)
        expected = ", ".join(rule.value)
        op_text = "one of"
    else:
        expected = _text(rule.value)
        op_text = rule.op
        if is_decimal_string(actual) and is_decimal_string(rule.value):
            ok = _NUMERIC_OPS[rule.op](parse_decimal(actual), parse_decimal(rule.value))
        elif rule.op in ("==", "!="):
            ok = (actual == rule.value) == (rule.op == "==")
        else:
            return Reason("field_not_decimal", {"field": rule.field, "value": _text(actual)})
    if ok:
        return None
    return Reason(
        "field_rule_failed",
        {"field": rule.field, "value": _text(actual), "op": op_text, "expected": expected},
    )


def _member(actual: str | bool, options: tuple[str, ...]) -> bool:
    if isinstance(actual, bool):
        return False
    if is_decimal_string(actual):
        value = parse_decimal(actual)
        return any(is_decimal_string(o) and parse_decimal(o) == value for o in options)
    return actual in options


def _text(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
