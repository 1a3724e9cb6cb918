"""The four built-in templates: they validate, map onto scoring files and render."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator

from app.tender_templates import (
    BUILTIN_KEYS,
    LOCALES,
    apply_defaults,
    builtin_template,
    load_template,
    render_body,
    sample_context,
    schema,
    validate_template,
    validate_text,
)
from app.tender_templates.validation import MAX_TEMPLATE_CHARS
from tests.tender_templates.helpers import builtin_doc

EXPECTED = {
    # key: category, direction, method, (price, commercial, technical) points
    "goods": ("goods", "lowest_wins", "lowest_price_benchmark", ("30", 2, 5)),
    "works": ("works", "lowest_wins", "average_benchmark", ("50", 0, 7)),
    "services": ("services", "lowest_wins", "lowest_evaluated_price", (None, 0, 3)),
    "asset_sale": ("asset_sale", "highest_wins", "highest_price", ("100", 0, 0)),
}


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(schema())
    text = files("app.tender_templates").joinpath("template.schema.json").read_text("utf-8")
    assert json.loads(text)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_builtin_keys_and_unknown_key():
    assert BUILTIN_KEYS == ("goods", "works", "services", "asset_sale")
    with pytest.raises(KeyError, match="no built-in template 'land'"):
        builtin_template("land")


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_builtin_validates(key):
    text = builtin_template(key)
    assert len(text) < MAX_TEMPLATE_CHARS
    assert validate_text(text) == []
    doc = load_template(text)
    assert validate_template(doc) == []
    category, direction, method, (price_points, n_commercial, n_technical) = EXPECTED[key]
    assert doc["key"] == key
    assert doc["category"] == category
    assert doc["direction"] == direction
    assert doc["price"]["method"] == method
    assert doc["price"].get("max_points") == price_points
    assert len(doc.get("commercial_criteria", [])) == n_commercial
    assert len(doc.get("technical_criteria", [])) == n_technical
    assert set(doc["name"]) == {"en", "ko", "zh_Hans"}


def test_builtin_points_are_those_of_the_design():
    goods = builtin_doc("goods")
    assert [c["max_points"] for c in goods["commercial_criteria"]] == ["5", "5"]
    assert sum(int(c["max_points"]) for c in goods["technical_criteria"]) == 60
    works = builtin_doc("works")
    assert works["price"]["params"]["k"] == "-0.03"
    assert sum(int(c["max_points"]) for c in works["technical_criteria"]) == 50
    services = builtin_doc("services")
    assert all("pass_mark" in c for c in services["technical_criteria"])
    sale = builtin_doc("asset_sale")
    assert sale["compliance"]["reserve_price_required"] is True
    assert "ceiling_price_required" not in sale["compliance"]


@pytest.mark.parametrize("key", BUILTIN_KEYS)
@pytest.mark.parametrize("locale", LOCALES)
def test_builtin_renders_in_every_locale(key, locale):
    doc = builtin_doc(key)
    context = sample_context(doc["category"])
    html = render_body(doc, context, locale)
    assert f"<h1>{context['tender']['title']}</h1>" in html
    assert context["tender"]["reference"] in html
    assert "{{" not in html and "{%" not in html
    assert "<script" not in html
    assert html.count("<table>") >= 3  # header, schedule, bid form, ...
    assert "Qinghe City Public Resource Trading Centre" in html
    money = "18,600,000.00" if key == "asset_sale" else "2,090,000.00"
    assert f"<td>CNY {money}</td>" in html  # the ceiling or reserve price


@pytest.mark.parametrize(
    ("locale", "texts"),
    [
        ("en", ["Ceiling price", "Lowest-price benchmark", "Warranty period"]),
        ("ko", ["상한가격", "최저가 기준", "보증 기간"]),
        ("zh_Hans", ["最高限价", "低价优先法", "质保期"]),
    ],
)
def test_generated_parts_follow_the_locale(locale, texts):
    html = render_body(builtin_doc("goods"), sample_context("goods"), locale)
    for text in texts:
        assert text in html


def test_goods_document_shows_the_scoring_tables():
    html = render_body(builtin_doc("goods"), sample_context("goods"), "en")
    assert "5 points at 15 or less, 0 points at 60 or more, in proportion between" in html
    assert "36 or more: 5 points; 24 or more: 3 points; 12 or more: 1 point" in html
    assert "price score = 30 × B ÷ bid price" in html
    assert "<td>Compliance with the technical specifications</td>\n<td>25</td>\n<td>0.5</td>" in (
        html
    )
    assert "CNY 1,250,000.00" in html  # lot 1's ceiling price, in the lots table


def test_works_document_describes_the_average_benchmark():
    html = render_body(builtin_doc("works"), sample_context("works"), "en")
    assert "average of the compliant bid prices × (1 − 0.03)" in html
    assert "from 6 compliant bids on the highest price is left out" in html
    assert "50 − 1.0 × D" in html and "50 − 0.5 × |D|" in html


def test_services_document_shows_pass_marks_and_adjustments():
    html = render_body(builtin_doc("services"), sample_context("services"), "en")
    assert "<th>Pass mark</th>" in html
    assert "Lowest evaluated price: no points are given." in html
    assert "Adjustments: For each service requirement marked ▲" in html


def test_asset_sale_document_shows_the_reserve_price():
    html = render_body(builtin_doc("asset_sale"), sample_context("asset_sale"), "zh_Hans")
    assert "<th>保留价</th>" in html
    assert "CNY 18,600,000.00" in html
    assert "价高者得" in html


def test_one_lot_hides_the_lot_table():
    context = sample_context("goods")
    context["lots"] = context["lots"][:1]
    html = render_body(builtin_doc("goods"), context, "en")
    assert "The procurement is divided into" not in html
    assert "Lot 1: laboratory equipment" not in html


def test_apply_defaults_writes_every_default_out():
    goods = apply_defaults(builtin_doc("goods"))
    assert goods["submission_days_min"] == 20  # the legal minimum (China)
    assert goods["addendum_min_days"] == 15
    assert goods["commercial_fields"][1]["required"] is True
    sale = apply_defaults(builtin_doc("asset_sale"))
    assert sale["submission_days_min"] == 20
    assert sale["aggregation"] == "auto"
    assert sale["compliance"]["ceiling_price_required"] is False
    assert sale["technical_criteria"] == []
    works = apply_defaults(builtin_doc("works"))
    assert works["submission_days_min"] == 20
    services = builtin_doc("services")
    del services["compliance"]["bid_bond_max_pct"]
    assert apply_defaults(services)["compliance"]["bid_bond_max_pct"] == "2"
    assert validate_template(apply_defaults(builtin_doc("goods"))) == []


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_builtin_periods_meet_the_legal_minimums(app, key):
    """China: at least 20 days from the issue of the documents to the deadline; changes that
    affect the preparation of bids at least 15 days before it (README, "Legal periods")."""
    doc = apply_defaults(builtin_doc(key))
    assert doc["submission_days_min"] >= 20
    assert doc["addendum_min_days"] >= 15
    assert app.config["SUBMISSION_DAYS_MIN"][doc["category"]] >= 20
    assert app.config["ADDENDUM_MIN_DAYS"] >= 15


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_every_builtin_body_is_written_in_the_three_languages(key):
    """The tender document of a built-in template reads in Korean and Chinese too, with the
    same placeholders and conditions as the English one."""
    doc = builtin_doc(key)
    body = doc["body"]
    assert sorted(body) == ["en", "ko", "zh_Hans"]
    tags = {
        lang: sorted(re.findall(r"\{\{\s*[a-z_.]+\s*\}\}|\{%[^%]*%\}", text))
        for lang, text in body.items()
    }
    assert tags["ko"] == tags["en"] and tags["zh_Hans"] == tags["en"]
    context = sample_context(doc["category"])
    korean = render_body(doc, context, "ko")
    chinese = render_body(doc, context, "zh_Hans")
    assert len(re.findall(r"[\uac00-\ud7a3]", korean)) > 800 and "Part 1" not in korean
    assert len(re.findall(r"[\u4e00-\u9fff]", chinese)) > 800 and "Part 1" not in chinese
