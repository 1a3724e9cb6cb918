"""Builders shared by the tender-template tests (pure: no app, no database)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.tender_templates import builtin_template, load_template

__all__ = ["builtin_doc", "replace_once", "synthetic_bids", "tender_values_for"]


def builtin_doc(key: str) -> dict[str, Any]:
    return load_template(builtin_template(key))


def replace_once(text: str, old: str, new: str) -> str:
    """``text`` with the single occurrence of ``old`` replaced (fails loudly otherwise)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def tender_values_for(doc: dict[str, Any]) -> dict[str, Any]:
    """Values that satisfy any valid template: a ceiling or reserve price and a zero bond."""
    if doc["direction"] == "highest_wins":
        return {"reserve_price": Decimal("1000000.00"), "bid_bond": "0"}
    return {"ceiling_price": Decimal("1000000.00"), "bid_bond": "0"}


def _field_value(field: dict[str, Any], rules: list[dict[str, Any]]) -> str:
    """A value of ``field`` that passes its bounds and the field rules on it."""
    if field["type"] == "choice":
        allowed = [r["value"] for r in rules if r["op"] == "in"]
        return allowed[0][0] if allowed else field["choices"][0]
    if field["type"] == "text":
        return "Model QX-200"
    if field["type"] == "date":
        return "2025-06-01"
    low = [Decimal(r["value"]) for r in rules if r["op"] in (">=", "==")]
    high = [Decimal(r["value"]) for r in rules if r["op"] == "<="]
    lo, hi = max(low, default=None), min(high, default=None)
    if lo is not None and hi is not None:
        value = (lo + hi) / 2
    else:
        value = lo if lo is not None else hi if hi is not None else Decimal(1)
    if field["type"] == "integer":
        value = value.to_integral_value()
    return format(value, "f")


def synthetic_bids(
    doc: dict[str, Any], config: dict[str, Any], prices: list[str], experts: int = 5
) -> list[dict[str, Any]]:
    """Compliant bids B1, B2, ... at ``prices`` for the scoring file ``config`` of ``doc``."""
    rules = config.get("compliance_rules", {})
    field_rules = rules.get("field_rules", [])
    fields = {
        f["key"]: _field_value(f, [r for r in field_rules if r["field"] == f["key"]])
        for f in doc["commercial_fields"]
        if f["key"] != "price"
    }
    criteria = config["technical_criteria"]
    bids = []
    for i, price in enumerate(prices):
        bid: dict[str, Any] = {
            "id": f"B{i + 1}",
            "price": price,
            "fields": dict(fields),
            "documents": list(rules.get("required_documents", [])),
            "compliance": dict.fromkeys(rules.get("required_checks", []), True),
        }
        if "bid_bond" in rules:
            bid["bid_bond"] = rules["bid_bond"]
        if criteria:
            sheets = {}
            for e in range(experts):
                sheet = {}
                for c in criteria:
                    top, step = Decimal(c["max_points"]), Decimal(c["step"])
                    score = top - step * ((e + i) % 3 + 1)  # never 0 or the maximum
                    sheet[c["key"]] = format(max(score, step), "f")
                sheets[f"E{e + 1}"] = sheet
            bid["technical"] = sheets
        bids.append(bid)
    return bids
