"""to_scoring_config: a template plus a tender's values make a scoring file evaluation scores."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

import evaluation
from app.tender_templates import (
    BUILTIN_KEYS,
    TemplateValidationError,
    to_scoring_config,
)
from tests.tender_templates.helpers import builtin_doc, synthetic_bids

PROCUREMENT = {"ceiling_price": Decimal("1000000.00"), "bid_bond": Decimal("20000.00")}
SALE = {"reserve_price": "18600000.00", "bid_bond": "3720000.00"}


def values_for(key: str) -> dict:
    return dict(SALE if key == "asset_sale" else PROCUREMENT)


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_config_is_a_valid_scoring_file_without_bids(key):
    doc = builtin_doc(key)
    config = to_scoring_config(doc, {**values_for(key), "tender": {"id": "T-1", "lot": "1"}})
    assert config["bids"] == []
    assert config["format"] == "fairbid-scoring-file/1"
    assert config["tender"] == {"id": "T-1", "lot": "1"}
    assert config["direction"] == doc["direction"]
    assert config["price"]["method"] == doc["price"]["method"]
    tender = evaluation.validate(config)
    assert tender.min_bids == doc.get("min_bids", 3)
    result = evaluation.score(config)["result"]
    assert result["outcome"]["code"] == "too_few_bids" or doc.get("min_bids") == 1


def test_goods_config_maps_every_part_of_the_template():
    config = to_scoring_config(builtin_doc("goods"), PROCUREMENT)
    assert config["ceiling_price"] == "1000000.00"
    assert config["price"] == {"method": "lowest_price_benchmark", "max_points": "30"}
    assert config["commercial_criteria"][0] == {
        "key": "delivery",
        "max_points": "5",
        "rule": "linear",
        "field": "delivery_days",
        "better": "lower",
        "lower": "15",
        "upper": "60",
    }
    assert config["technical_criteria"][0] == {
        "key": "specification_compliance",
        "max_points": "25",
        "step": "0.5",
    }
    rules = config["compliance_rules"]
    assert rules["bid_bond"] == "20000.00"
    assert rules["required_fields"] == [
        "delivery_days",
        "warranty_months",
        "origin",
        "bid_validity_days",
    ]
    assert "product_certificates" not in rules["required_documents"]  # optional document
    assert rules["field_rules"][0] == {"field": "bid_validity_days", "op": ">=", "value": "90"}
    assert {"field": "delivery_days", "op": "<=", "value": "90"} in rules["field_rules"]
    assert {"field": "origin", "op": "in", "value": ["domestic", "imported"]} in rules[
        "field_rules"
    ]
    assert config["abnormally_low"] == {
        "below_mean_of_others_pct": "40",
        "below_next_lowest_pct": "30",
    }


def test_goods_round_trip_through_evaluation_score():
    doc = builtin_doc("goods")
    config = to_scoring_config(doc, PROCUREMENT)
    config["bids"] = synthetic_bids(doc, config, ["880000.00", "925000.00", "798000.00"])
    late = synthetic_bids(doc, config, ["1000000.01", "900000.00"])
    late[0]["id"], late[1]["id"] = "B4", "B5"
    late[1]["fields"]["delivery_days"] = "120"  # out of the field's bounds
    config["bids"] += late
    result = evaluation.score(config)["result"]
    assert result["outcome"]["status"] == "ranked"
    by_id = {b["id"]: b for b in result["bids"]}
    assert [r["code"] for r in by_id["B4"]["reasons"]] == ["above_ceiling"]
    assert [r["code"] for r in by_id["B5"]["reasons"]] == ["field_rule_failed"]
    assert by_id["B3"]["price_score"] == "30.00"  # the lowest valid price is the benchmark
    assert by_id["B1"]["price_score"] == "27.20"  # 30 × 798000 / 880000 = 27.204...
    assert by_id["B1"]["commercial_score"]["total"] == by_id["B3"]["commercial_score"]["total"]
    assert result["price"]["benchmark"] == "798000.00"
    assert {b["rank"] for b in result["bids"] if b["compliant"]} == {1, 2, 3}
    assert evaluation.verify(evaluation.score(config)) == []


def test_works_round_trip_uses_the_average_benchmark_with_k():
    doc = builtin_doc("works")
    config = to_scoring_config(doc, PROCUREMENT)
    prices = ["900000.00", "910000.00", "920000.00", "930000.00", "940000.00", "950000.00"]
    prices.append("990000.00")
    config["bids"] = synthetic_bids(doc, config, prices)
    result = evaluation.score(config)["result"]
    assert result["outcome"]["status"] == "ranked"
    price = result["price"]
    # 7 bids: the highest and the lowest are dropped; B = mean of the 5 others x 0.97.
    assert [d["position"] for d in price["dropped"]] == ["highest", "lowest"]
    assert Decimal(price["benchmark"]) == Decimal("930000") * Decimal("0.97")
    assert price["params"]["k"] == "-0.03"


def test_services_round_trip_ranks_by_evaluated_price_with_pass_checks():
    doc = builtin_doc("services")
    config = to_scoring_config(doc, PROCUREMENT)
    checks = config["compliance_rules"]["required_checks"]
    assert checks[-3:] == [
        "technical_pass_service_plan",
        "technical_pass_staffing",
        "technical_pass_emergency_plan",
    ]
    config["bids"] = synthetic_bids(doc, config, ["500000.00", "480000.00", "520000.00"])
    config["bids"][1]["compliance"]["technical_pass_staffing"] = False
    config["bids"][2]["adjustments"] = [{"reason": "one ▲ requirement not met", "amount": "-90000"}]
    result = evaluation.score(config)["result"]
    assert result["outcome"]["status"] == "ranked"
    by_id = {b["id"]: b for b in result["bids"]}
    assert not by_id["B2"]["compliant"]
    assert by_id["B3"]["evaluated_price"] == "430000.00"
    assert [r["bid"] for r in result["ranking"]] == ["B3", "B1"]
    assert by_id["B1"]["price_score"] is None and by_id["B1"]["total"] is None


def test_asset_sale_round_trip_highest_price_wins():
    doc = builtin_doc("asset_sale")
    config = to_scoring_config(doc, SALE)
    assert config["reserve_price"] == "18600000.00"
    assert "ceiling_price" not in config and "abnormally_low" not in config
    config["bids"] = synthetic_bids(doc, config, ["18600000.00", "21350000.00", "18500000.00"])
    result = evaluation.score(config)["result"]
    by_id = {b["id"]: b for b in result["bids"]}
    assert [r["code"] for r in by_id["B3"]["reasons"]] == ["below_reserve"]
    assert by_id["B2"]["price_score"] == "100.00"
    assert result["outcome"]["candidates"] == ["B2", "B1"]
    # A single compliant bid at the reserve price is enough (min_bids: 1).
    config["bids"] = config["bids"][:1]
    assert evaluation.score(config)["result"]["outcome"]["status"] == "ranked"


def test_the_template_is_not_changed():
    doc = builtin_doc("goods")
    before = copy.deepcopy(doc)
    config = to_scoring_config(doc, PROCUREMENT)
    config["commercial_criteria"][1]["steps"][0]["points"] = "2"
    assert doc == before


@pytest.mark.parametrize(
    ("key", "values", "expected"),
    [
        (
            "goods",
            {"bid_bond": "1000"},
            [
                (
                    "tender_values.ceiling_price",
                    "is required by the template (compliance.ceiling_price_required)",
                )
            ],
        ),
        (
            "goods",
            {"ceiling_price": "100000"},
            [
                (
                    "tender_values.bid_bond",
                    "is required by the template (compliance.bid_bond_required)",
                )
            ],
        ),
        (
            "goods",
            {"ceiling_price": 100000.0, "bid_bond": "1000"},
            [
                (
                    "tender_values.ceiling_price",
                    'must be an amount (Decimal or a decimal string such as "1000.00"), not the '
                    "number 100000.0",
                )
            ],
        ),
        (
            "goods",
            {"ceiling_price": "0", "bid_bond": "1000"},
            [("tender_values.ceiling_price", "must be greater than 0")],
        ),
        (
            "goods",
            {"ceiling_price": "100000", "budget": "120000", "bid_bond": "2400.01"},
            [
                (
                    "tender_values.bid_bond",
                    "2400.01 is more than 2 % of the budget 120000 (at most 2400; "
                    "compliance.bid_bond_max_pct)",
                )
            ],
        ),
        (
            "goods",
            {"ceiling_price": "100000", "bid_bond": "2000.01", "tender": {"id": 7}},
            [
                (
                    "tender_values.bid_bond",
                    "2000.01 is more than 2 % of the ceiling price 100000 (at most 2000; "
                    "compliance.bid_bond_max_pct)",
                ),
                ("tender_values.tender", "must map names to strings"),
            ],
        ),
        (
            "asset_sale",
            {"ceiling_price": "100000", "reserve_price": "90000", "bid_bond": "1"},
            [("tender_values.ceiling_price", "a ceiling price applies to lowest_wins only")],
        ),
        (
            "works",
            {"ceiling_price": "100000", "reserve_price": "90000", "bid_bond": "1"},
            [("tender_values.reserve_price", "a reserve price applies to highest_wins only")],
        ),
    ],
)
def test_bad_tender_values(key, values, expected):
    with pytest.raises(TemplateValidationError) as caught:
        to_scoring_config(builtin_doc(key), values)
    assert [(e.path, e.message) for e in caught.value.errors] == expected


def test_bond_at_the_limit_is_accepted():
    config = to_scoring_config(
        builtin_doc("goods"), {"ceiling_price": "100000", "bid_bond": "2000"}
    )
    assert config["compliance_rules"]["bid_bond"] == "2000"


def test_an_invalid_template_is_refused():
    doc = builtin_doc("goods")
    doc["price"]["max_points"] = "31"
    with pytest.raises(TemplateValidationError, match=r"price\.max_points: price 31 \+"):
        to_scoring_config(doc, PROCUREMENT)
