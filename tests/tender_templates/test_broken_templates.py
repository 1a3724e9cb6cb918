"""A corpus of broken templates: each fails with exactly the expected path and message.

Each case edits one built-in template (replacing one unique snippet, or appending top-level
keys after the body), so that every other part stays valid and the error list is exact.
"""

from __future__ import annotations

import pytest

from app.tender_templates import (
    TemplateError,
    TemplateValidationError,
    builtin_template,
    load_template,
    validate_template,
    validate_text,
)
from tests.tender_templates.helpers import builtin_doc, replace_once

GOODS_QA = 'max_points: "10"\n    step: "1"\n'  # quality_assurance, the only such pair in goods
GOODS_TRAINING = 'max_points: "5"\n    step: "0.5"\n    guidance:\n      en: >-\n        Content'
LEP_CRITERION = (
    "commercial_criteria:\n"
    "  - {key: staff, max_points: '5', rule: linear, field: onsite_staff, better: higher,"
    " lower: '18', upper: '30'}\n"
)

# (id, built-in, old snippet or None to append, new text, expected [(path, message)])
CASES = [
    (
        "float_k",
        "works",
        'k: "-0.03"',
        "k: -0.03",
        [
            (
                "price.params.k",
                'must be a decimal string: write "-0.03" in quotes (YAML reads an unquoted '
                "-0.03 as a binary floating-point number)",
            )
        ],
    ),
    (
        "k_out_of_range",
        "works",
        'k: "-0.03"',
        'k: "0.25"',
        [("price.params.k", "must be between -0.2 and 0.2, not 0.25")],
    ),
    (
        "k_not_a_decimal",
        "works",
        'k: "-0.03"',
        'k: "-3%"',
        [
            (
                "price.params.k",
                'must be a decimal string in plain notation such as "-0.05", not "-3%"',
            )
        ],
    ),
    (
        "unknown_method",
        "goods",
        "method: lowest_price_benchmark",
        "method: lowest_bid",
        [
            (
                "price.method",
                "must be one of: lowest_price_benchmark, average_benchmark, highest_price, "
                'lowest_evaluated_price; not "lowest_bid"',
            )
        ],
    ),
    (
        "misspelt_method",
        "goods",
        "method: lowest_price_benchmark",
        "method: lowest_price_benchmarks",
        [
            (
                "price.method",
                "must be one of: lowest_price_benchmark, average_benchmark, highest_price, "
                'lowest_evaluated_price; not "lowest_price_benchmarks" '
                "(did you mean 'lowest_price_benchmark'?)",
            )
        ],
    ),
    (
        "method_direction_mismatch",
        "goods",
        "method: lowest_price_benchmark",
        "method: highest_price",
        [
            (
                "price.method",
                "highest_price does not fit direction lowest_wins; use one of: "
                "average_benchmark, lowest_evaluated_price, lowest_price_benchmark",
            )
        ],
    ),
    (
        "sale_with_procurement_method",
        "asset_sale",
        "method: highest_price",
        "method: lowest_price_benchmark",
        [
            (
                "price.method",
                "lowest_price_benchmark does not fit direction highest_wins; use one of: "
                "highest_price",
            )
        ],
    ),
    (
        "category_direction_mismatch",
        "asset_sale",
        "direction: highest_wins",
        "direction: lowest_wins",
        [
            ("compliance.reserve_price_required", "a reserve price applies to highest_wins only"),
            ("direction", "must be highest_wins for category asset_sale"),
            (
                "price.method",
                "highest_price does not fit direction lowest_wins; use one of: "
                "average_benchmark, lowest_evaluated_price, lowest_price_benchmark",
            ),
        ],
    ),
    (
        "points_not_summing_to_100",
        "goods",
        'max_points: "30"',
        'max_points: "35"',
        [
            (
                "price.max_points",
                "price 35 + commercial 10 + technical 60 = 105 points; the maximum points must "
                "add up to 100",
            )
        ],
    ),
    (
        "float_points",
        "goods",
        'max_points: "30"',
        "max_points: 30.0",
        [
            (
                "price.max_points",
                'must be a decimal string: write "30.0" in quotes (YAML reads an unquoted 30.0 '
                "as a binary floating-point number)",
            )
        ],
    ),
    (
        "integer_points",
        "goods",
        'max_points: "30"',
        "max_points: 30",
        [("price.max_points", 'must be a decimal string: write "30" in quotes')],
    ),
    (
        "step_not_dividing_max",
        "goods",
        GOODS_QA,
        'max_points: "10"\n    step: "3"\n',
        [
            (
                "technical_criteria.1.step",
                "3 does not divide max_points 10: scores go in steps from 0 to the maximum",
            )
        ],
    ),
    (
        "step_larger_than_max",
        "works",
        'max_points: "4"\n    step: "0.5"',
        'max_points: "4"\n    step: "5"',
        [("technical_criteria.6.step", "must not be larger than max_points (4)")],
    ),
    (
        "duplicate_technical_key",
        "goods",
        "key: training",
        "key: quality_assurance",
        [
            (
                "technical_criteria.4.key",
                "duplicate key 'quality_assurance' (also technical_criteria.1.key)",
            )
        ],
    ),
    (
        "duplicate_commercial_criterion_key",
        "goods",
        "key: warranty\n",
        "key: delivery\n",
        [
            (
                "commercial_criteria.1.key",
                "duplicate key 'delivery' (also commercial_criteria.0.key)",
            )
        ],
    ),
    (
        "duplicate_field_key",
        "goods",
        "key: brand_model",
        "key: origin",
        [("commercial_fields.5.key", "duplicate key 'origin' (also commercial_fields.3.key)")],
    ),
    (
        "missing_price_field",
        "goods",
        "  - key: price\n",
        "  - key: total_price\n",
        [("commercial_fields", "must include the price field (key: price, type: money)")],
    ),
    (
        "price_field_not_money",
        "asset_sale",
        "zh_Hans: 竞买总价\n    type: money",
        "zh_Hans: 竞买总价\n    type: decimal",
        [("commercial_fields", "must include the price field (key: price, type: money)")],
    ),
    (
        "unknown_placeholder",
        "goods",
        "{{ tender.reference }} |\n    | Procuring",
        "{{ tender.referense }} |\n    | Procuring",
        [("body.en", "unknown placeholder 'tender.referense' (line 7 of the body)")],
    ),
    (
        "unknown_placeholder_group",
        "works",
        "| Telephone | {{ contact.phone }}",
        "| Telephone | {{ bidder.phone }}",
        [("body.en", "unknown placeholder 'bidder' (line 164 of the body)")],
    ),
    (
        "unknown_loop_attribute",
        "goods",
        "electronically):\n\n    {{ qualification_documents }}\n",
        "electronically):\n\n    {% for d in qualification_documents %}\n"
        "    - {{ d.title }}\n    {% endfor %}\n",
        [("body.en", "unknown placeholder 'd.title' (line 54 of the body)")],
    ),
    (
        "filter_in_body",
        "goods",
        "{{ tender.reference }} |\n    | Procuring",
        "{{ tender.reference | upper }} |\n    | Procuring",
        [
            (
                "body.en",
                "a filter (|) is not allowed in a tender body: use {{ placeholders }}, "
                "{% if %} and {% for %} (line 7 of the body)",
            )
        ],
    ),
    (
        "sandbox_escape_attempt",
        "goods",
        "{{ tender.reference }} |\n    | Procuring",
        "{{ tender.__class__.__mro__ }} |\n    | Procuring",
        [("body.en", "unknown placeholder 'tender.__class__' (line 7 of the body)")],
    ),
    (
        "include_in_body",
        "services",
        "## Part 9. Contact",
        "{% include 'secrets.txt' %}\n    ## Part 9. Contact",
        [
            (
                "body.en",
                "{% include %} is not allowed in a tender body: use {{ placeholders }}, "
                "{% if %} and {% for %} (line 106 of the body)",
            )
        ],
    ),
    (
        "placeholder_syntax_error",
        "goods",
        "{{ tender.reference }} |\n    | Procuring",
        "{{ tender.reference } |\n    | Procuring",
        [("body.en", "placeholder syntax error: unexpected '}' (line 7 of the body)")],
    ),
    (
        "unknown_key",
        "goods",
        "aggregation: auto",
        "agregation: auto",
        [("agregation", "unknown key: did you mean 'aggregation'?")],
    ),
    (
        "params_for_a_method_without_params",
        "goods",
        'max_points: "30"\n',
        'max_points: "30"\n  params:\n    k: "0.1"\n',
        [("price.params.k", "lowest_price_benchmark takes no parameters")],
    ),
    (
        "points_for_lowest_evaluated_price",
        "services",
        "method: lowest_evaluated_price\n",
        'method: lowest_evaluated_price\n  max_points: "10"\n',
        [
            (
                "price.max_points",
                'must be "0" or left out: lowest_evaluated_price gives no points, not "10"',
            )
        ],
    ),
    (
        "commercial_criteria_with_lowest_evaluated_price",
        "services",
        None,
        LEP_CRITERION,
        [
            (
                "commercial_criteria",
                "lowest_evaluated_price gives no points: remove the commercial criteria (put "
                "minimum requirements in compliance.field_rules)",
            )
        ],
    ),
    (
        "pass_mark_with_points",
        "goods",
        GOODS_TRAINING,
        'max_points: "5"\n    step: "0.5"\n    pass_mark: "3"\n    guidance:\n      en: >-\n'
        "        Content",
        [
            (
                "technical_criteria.4.pass_mark",
                "pass marks are for lowest_evaluated_price templates only: with points, the "
                "technical score counts in the total",
            )
        ],
    ),
    (
        "pass_mark_off_step",
        "services",
        'pass_mark: "6"\n    guidance:\n      en: >-\n        Fire',
        'pass_mark: "6.5"\n    guidance:\n      en: >-\n        Fire',
        [("technical_criteria.2.pass_mark", "must be a multiple of the step 1")],
    ),
    (
        "drop_lowest_before_highest",
        "works",
        "drop_lowest_from: 7",
        "drop_lowest_from: 5",
        [
            (
                "price.params.drop_lowest_from",
                "must be at least drop_highest_from (6): the lowest price is dropped only when "
                "the highest is",
            )
        ],
    ),
    (
        "zero_points_per_percent",
        "works",
        'above_per_pct: "1.0"',
        'above_per_pct: "0"',
        [("price.params.above_per_pct", "must be greater than 0")],
    ),
    (
        "criterion_on_unknown_field",
        "goods",
        "field: delivery_days",
        "field: delivery_time",
        [("commercial_criteria.0.field", "no commercial field has the key 'delivery_time'")],
    ),
    (
        "criterion_on_text_field",
        "goods",
        "field: warranty_months",
        "field: brand_model",
        [
            (
                "commercial_criteria.1.field",
                "'brand_model' is a text field; a criterion scores money, integer or decimal "
                "fields",
            )
        ],
    ),
    (
        "linear_bounds_reversed",
        "goods",
        'upper: "60"',
        'upper: "10"',
        [("commercial_criteria.0.upper", "must be greater than lower (15)")],
    ),
    (
        "steps_never_reach_max",
        "goods",
        '{threshold: "36", points: "5"}',
        '{threshold: "36", points: "4"}',
        [
            (
                "commercial_criteria.1.steps",
                "the best step gives 4 points; one step must give max_points (5)",
            )
        ],
    ),
    (
        "field_bounds_reversed",
        "goods",
        'max: "90"',
        'max: "0"',
        [("commercial_fields.1.max", "must not be less than min (1)")],
    ),
    (
        "integer_bound_with_fraction",
        "goods",
        'min: "12"',
        'min: "12.5"',
        [("commercial_fields.2.min", "must be a whole number for an integer field")],
    ),
    (
        "choice_without_choices",
        "goods",
        "    choices: [domestic, imported]\n",
        "",
        [("commercial_fields.3.choices", "is required")],
    ),
    (
        "numeric_rule_on_text_field",
        "goods",
        "field: bid_validity_days\n      op:",
        "field: brand_model\n      op:",
        [
            (
                "compliance.field_rules.0.op",
                "'>=' compares numbers, but 'brand_model' is a text field",
            )
        ],
    ),
    (
        "ceiling_price_for_a_sale",
        "asset_sale",
        "  reserve_price_required: true\n",
        "  reserve_price_required: true\n  ceiling_price_required: true\n",
        [("compliance.ceiling_price_required", "a ceiling price applies to lowest_wins only")],
    ),
    (
        "abnormally_low_for_a_sale",
        "asset_sale",
        None,
        'abnormally_low: {below_next_lowest_pct: "10"}\n',
        [("abnormally_low", "applies to lowest_wins tenders only")],
    ),
    (
        "addendum_days_not_below_submission_days",
        "goods",
        "addendum_min_days: 15",
        "addendum_min_days: 20",
        [("addendum_min_days", "must be less than submission_days_min (20)")],
    ),
    (
        "missing_category",
        "goods",
        "category: goods\n",
        "",
        [("category", "is required")],
    ),
    (
        "name_without_english",
        "goods",
        "  en: Goods procurement — comprehensive scoring (lowest-price benchmark)\n",
        "",
        [("name.en", "is required")],
    ),
    (
        "date_where_a_count_belongs",
        "goods",
        "min_bids: 3",
        "min_bids: 2025-04-01",
        [
            (
                "min_bids",
                "must be a whole number, not the date 2025-04-01 (quote it to make it text)",
            )
        ],
    ),
    (
        "min_bids_zero",
        "goods",
        "min_bids: 3",
        "min_bids: 0",
        [("min_bids", "must be at least 1")],
    ),
    (
        "bad_key_pattern",
        "goods",
        "key: warranty\n",
        "key: Warranty Points\n",
        [
            (
                "commercial_criteria.1.key",
                "must be lowercase letters, digits and _, starting with a letter, not "
                '"Warranty Points"',
            )
        ],
    ),
]


def _text(base: str, old: str | None, new: str) -> str:
    text = builtin_template(base)
    if old is None:
        return text + new  # the body is last: a key at column 0 ends it
    return replace_once(text, old, new)


@pytest.mark.parametrize(
    ("base", "old", "new", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_broken_template_fails_with_the_expected_errors(base, old, new, expected):
    errors = validate_text(_text(base, old, new))
    assert sorted((e.path, e.message) for e in errors) == sorted(expected)
    assert all(e.line is not None for e in errors)
    # The same errors without the text (a dict, e.g. from the JSON API), floats aside.
    if "float" not in str(expected):
        doc = load_template(_text(base, old, new))
        assert sorted((e.path, e.message) for e in validate_template(doc)) == sorted(expected)


def test_error_lines_point_into_the_yaml():
    text = replace_once(builtin_template("works"), 'k: "-0.03"', "k: -0.03")
    [error] = validate_text(text)
    assert text.splitlines()[error.line - 1].strip() == "k: -0.03"
    assert str(error).startswith("price.params.k: must be a decimal string")


def test_load_template_refuses_floats_with_their_paths():
    text = replace_once(builtin_template("works"), 'k: "-0.03"', "k: -0.03")
    text = replace_once(text, 'above_per_pct: "1.0"', "above_per_pct: 1.0")
    with pytest.raises(TemplateValidationError) as caught:
        load_template(text)
    assert [e.path for e in caught.value.errors] == [
        "price.params.k",
        "price.params.above_per_pct",
    ]
    assert 'write "1.0" in quotes' in str(caught.value)


def test_load_template_refuses_a_float_in_an_unknown_place():
    text = builtin_template("goods") + "extra:\n  ratio: 0.5\n"
    with pytest.raises(TemplateValidationError) as caught:
        load_template(text)
    assert [(e.path, e.message) for e in caught.value.errors] == [
        (
            "extra.ratio",
            "0.5 is a binary floating-point number in YAML: write decimals as quoted strings, "
            'e.g. "0.5"',
        )
    ]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        pytest.param(
            "key: goods\nname: {en: Goods\ncategory: goods\n",
            "not valid YAML: expected ',' or '}', but got ':' (line 3, column 9; while "
            "parsing a flow mapping from line 2)",
            3,
            id="unclosed_flow_mapping",
        ),
        pytest.param(
            "key: goods\ncategory goods\n  direction: lowest_wins\n",
            "not valid YAML: could not find expected ':' (line 3, column 12; while scanning a "
            "simple key from line 2)",
            3,
            id="missing_colon",
        ),
        pytest.param(
            "key: goods\n\tname: x\n",
            "not valid YAML: found character '\\t' that cannot start any token (line 2, "
            "column 1; while scanning for the next token)",
            2,
            id="tab_indent",
        ),
        pytest.param(
            "key: a\n---\nkey: b\n",
            "not valid YAML: expected a single document in the stream but found another "
            "document (line 2, column 1)",
            2,
            id="two_documents",
        ),
        pytest.param(
            "- goods\n- works\n",
            "a template is a YAML mapping of keys to values (key: value), not a list",
            None,
            id="list",
        ),
        pytest.param(
            '"goods"\n',
            'a template is a YAML mapping of keys to values (key: value), not the text "goods"',
            None,
            id="scalar",
        ),
        pytest.param("# nothing\n", "the template is empty", None, id="empty"),
        pytest.param(
            "a: &anchor {x: 1}\nb: *anchor\n",
            "anchors (&anchor) are not supported: write the value out (line 1)",
            1,
            id="anchor",
        ),
        pytest.param(
            "b: *nowhere\n",
            "aliases (*nowhere) are not supported: write the value out (line 1)",
            1,
            id="alias",
        ),
        pytest.param("x: " + "[" * 600, "the template is nested too deeply", None, id="deep"),
        pytest.param(
            "x: '" + "a" * 300_000 + "'\n",
            "the template is longer than 262144 characters (300006)",
            None,
            id="too_long",
        ),
        pytest.param(
            b"key: \xff\n",
            "not UTF-8 text: 'utf-8' codec can't decode byte 0xff in position 5: invalid "
            "start byte",
            None,
            id="not_utf8",
        ),
    ],
)
def test_unreadable_documents(text, message, line):
    assert validate_text(text) == [TemplateError("", message, line)]
    with pytest.raises(TemplateValidationError) as caught:
        load_template(text)
    assert [str(e) for e in caught.value.errors] == [message]


def test_duplicate_and_non_text_yaml_keys():
    text = builtin_template("goods") + "min_bids: 4\n1: one\n"
    errors = validate_text(text)
    first = text.splitlines().index("min_bids: 3") + 1
    last = len(text.splitlines())
    assert [(e.path, e.message, e.line) for e in errors] == [
        ("", f"the key 1 on line {last} is read as a number: keys are text; quote it", last),
        (
            "min_bids",
            f"duplicate key 'min_bids' on line {last - 1} (first on line {first})",
            last - 1,
        ),
    ]
    with pytest.raises(TemplateValidationError):
        load_template(text)


@pytest.mark.parametrize("doc", [None, [], "text", 3, ["key", "goods"]])
def test_validate_template_refuses_non_mappings(doc):
    [error] = validate_template(doc)
    assert error.path == ""
    assert error.message.startswith("a template is a YAML mapping of keys to values")


def test_raw_html_in_the_body_is_not_an_error():
    text = replace_once(
        builtin_template("goods"),
        "## Part 12. Contact",
        '<script>alert("x")</script>\n    <b onclick="steal()">bold</b>\n\n    ## Part 12. Contact',
    )
    assert validate_text(text) == []


def test_errors_of_several_sections_are_all_reported():
    doc = builtin_doc("goods")
    doc["price"]["max_points"] = 30  # schema error: price section not checked further
    doc["technical_criteria"][0]["step"] = "7"  # semantic error elsewhere
    doc["aggregation"] = "median"
    errors = [(e.path, e.message) for e in validate_template(doc)]
    assert errors == [
        (
            "aggregation",
            "must be one of: mean, trimmed_mean, auto; not \"median\" (did you mean 'mean'?)",
        ),
        ("price.max_points", 'must be a decimal string: write "30" in quotes'),
        (
            "technical_criteria.0.step",
            "7 does not divide max_points 25: scores go in steps from 0 to the maximum",
        ),
    ]


def test_control_characters_are_a_yaml_error_not_a_crash():
    # Found by the API fuzzing: PyYAML's reader refuses them before parsing starts.
    (error,) = validate_text("key: goods\x99\n")
    assert error.message.startswith("not valid YAML: unacceptable character #x0099")
