"""The scoring file end to end: outcomes and edge cases, rounding of totals, canonical output,
the JSON Schema (valid files pass, each broken file fails with a precise message), verify."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import evaluation
from evaluation import ScoringFileError, dumps, load, parse_json, score, verify
from evaluation.samples import synthetic_document

from .helpers import bid_result, example, price_only_document, scored, technical_sheets

# --- outcomes and edge cases ------------------------------------------------------------------


def test_example_is_ranked_with_candidates():
    result = scored(example())
    assert result["outcome"]["status"] == "ranked"
    assert result["outcome"]["candidates"] == ["B2", "B1", "B3"]
    assert result["compliant_bids"] == 3 and result["bids_received"] == 4
    b2 = bid_result(result, "B2")
    # price 40 × 79800 / 92500 = 34.508108... -> 34.51; commercial: delivery 20 days ->
    # 5 × (60 - 20) / 50 = 4, warranty 36 months -> 5; technical: totals 41, 43, 42, 43,
    # 41.5 -> trimmed (drop 43 and 41) -> (42 + 43 + 41.5) / 3 = 42.1666... -> 42.17.
    assert b2["price_score"] == "34.51"
    assert b2["commercial_score"]["total"] == "9.00"
    assert b2["technical_score"]["total"] == "42.17"
    assert b2["total"] == "85.68"


def test_fewer_than_min_bids_fails_without_opening():
    result = scored(price_only_document(["100", "120"]))
    assert result["outcome"]["status"] == "failed"
    assert result["outcome"]["code"] == "too_few_bids"
    assert result["outcome"]["message"] == (
        "2 bid(s) received, fewer than the 3 required: the bids are not opened and the "
        "tender fails."
    )
    assert result["bids"] == [] and result["price"] is None
    assert scored(price_only_document(["100", "120"], min_bids=2))["outcome"]["status"] == (
        "ranked"
    )


def test_no_compliant_bid_fails():
    doc = price_only_document(["101", "102", "103"], ceiling_price="100")
    result = scored(doc)
    assert result["outcome"]["code"] == "no_compliant_bid"
    assert result["outcome"]["status"] == "failed"
    assert [b["compliant"] for b in result["bids"]] == [False, False, False]
    assert result["ranking"] == [] and result["price"] is None


@pytest.mark.parametrize(
    "method", ["lowest_price_benchmark", "average_benchmark", "lowest_evaluated_price"]
)
def test_one_compliant_bid_is_ranked_first(method):
    doc = price_only_document(["150", "90", "130"], method=method, ceiling_price="100")
    result = scored(doc)
    assert result["outcome"]["status"] == "ranked"
    assert result["outcome"]["candidates"] == ["B2"]
    b2 = bid_result(result, "B2")
    assert b2["rank"] == 1
    if method != "lowest_evaluated_price":
        assert b2["price_score"] == "100.00"


def test_all_bids_equal_need_a_draw_then_follow_it():
    doc = price_only_document(["100.00"] * 3, method="average_benchmark")
    result = scored(doc)
    assert [b["price_score"] for b in result["bids"]] == ["100.00"] * 3
    assert [b["rank"] for b in result["bids"]] == [1, 1, 1]
    assert result["outcome"]["status"] == "needs_draw"
    assert result["outcome"]["candidates"] == []
    assert result["ties"][0]["needs_draw"][0]["message"] == (
        "Bids B1, B2, B3 are tied at rank 1 after the price and technical tie-breaks: "
        "a lot draw must be recorded."
    )
    for bid, draw in zip(doc["bids"], (2, 3, 1), strict=True):
        bid["draw"] = draw
    result = scored(doc)
    assert result["outcome"]["status"] == "ranked"
    assert result["outcome"]["candidates"] == ["B3", "B1", "B2"]
    assert result["ties"][0]["resolved_by"] == ["draw"]


def test_total_is_the_sum_of_rounded_parts():
    # price: 25 × 10000 / 16000 = 15.625 -> 15.63; commercial: 1 × 1 / 8 = 0.125 -> 0.13;
    # technical: (80 + 80 + 80 + 80.5) / 4 = 80.125 -> 80.13.  Total 95.89, where rounding the
    # unrounded sum 95.875 would give 95.88.
    doc = price_only_document(["10000", "16000", "20000"], max_points="25")
    doc["commercial_criteria"] = [
        {
            "key": "c",
            "max_points": "1",
            "rule": "linear",
            "field": "f",
            "better": "higher",
            "lower": "0",
            "upper": "8",
        }
    ]
    doc["technical_criteria"] = [{"key": "q", "max_points": "100", "step": "0.5"}]
    for bid in doc["bids"]:
        bid["fields"] = {"f": "1"}
        bid["technical"] = technical_sheets(["80", "80", "80", "80.5"])
    b2 = bid_result(scored(doc), "B2")
    assert b2["price_score"] == "15.63"
    assert b2["commercial_score"]["criteria"]["c"]["raw"] == "0.125"
    assert b2["commercial_score"]["total"] == "0.13"
    assert b2["technical_score"]["mean"] == "80.125"
    assert b2["technical_score"]["total"] == "80.13"
    assert b2["total"] == "95.89"


def test_average_benchmark_working_is_in_the_result():
    doc = price_only_document(
        ["100000", "102000", "104000", "106000", "108000", "130000"],
        method="average_benchmark",
        max_points="60",
    )
    price = scored(doc)["price"]
    assert price["params"] == {
        "drop_highest_from": 6,
        "drop_lowest_from": 7,
        "k": "0",
        "above_per_pct": "1.0",
        "below_per_pct": "0.5",
    }
    assert price["dropped"] == [{"bid": "B6", "price": "130000", "position": "highest"}]
    assert price["n_valid"] == 6 and price["n_used"] == 5
    assert price["sum"] == "520000" and price["mean"] == "104000" and price["benchmark"] == "104000"
    assert price["bids"][0] == {
        "bid": "B1",
        "price": "100000",
        "deviation": "-3.846153846153846153846153846",
        "raw_score": "58.07692307692307692307692308",
        "score": "58.08",
    }


def test_lowest_evaluated_price_ranks_by_evaluated_price():
    doc = price_only_document(["100000", "98000", "99000"], method="lowest_evaluated_price")
    doc["bids"][1]["adjustments"] = [{"reason": "delivery 30 days late", "amount": "3000"}]
    result = scored(doc)
    assert [r["bid"] for r in result["ranking"]] == ["B3", "B1", "B2"]
    b2 = bid_result(result, "B2")
    assert b2["evaluated_price"] == "101000"
    assert b2["price_score"] is None and b2["total"] is None


def test_score_errors_block_the_ranking():
    doc = example()
    doc["bids"][0]["technical"]["E1"]["design"] = "22.3"  # step is 0.5
    doc["bids"][1]["technical"]["E2"]["service_plan"] = "21"  # max is 20
    result = scored(doc)
    assert result["outcome"]["status"] == "invalid"
    assert result["outcome"]["message"] == (
        "2 error(s) in the technical scores: no ranking until they are corrected."
    )
    errors = [f for f in result["flags"] if f["severity"] == "error"]
    assert [f["code"] for f in errors] == ["score_not_multiple_of_step", "score_out_of_range"]
    assert result["ranking"] == [] and all(b["rank"] is None for b in result["bids"])


def test_missing_sheet_and_too_few_experts_are_errors():
    doc = example()
    del doc["bids"][2]["technical"]["E5"]
    result = scored(doc)
    assert [f["code"] for f in result["flags"] if f["severity"] == "error"] == [
        "technical_sheet_missing"
    ]
    doc["aggregation"] = "trimmed_mean"
    for bid in doc["bids"]:
        bid["technical"] = {e: bid["technical"][e] for e in ("E1", "E2") if e in bid["technical"]}
    codes = {f["code"] for f in scored(doc)["flags"] if f["severity"] == "error"}
    assert codes == {"too_few_experts"}


def test_reason_flags_and_abnormally_low_in_result():
    doc = example()
    doc["bids"][0]["technical"]["E1"]["design"] = "30"
    doc["bids"][0]["technical_reasons"] = {"E1": {"design": "Complete and original design"}}
    doc["bids"][2]["price"] = "50000.00"  # 40 % below the next lowest (88000 -> 43.18 %)
    result = scored(doc)
    extreme = [f for f in result["flags"] if f["code"] == "extreme_score"]
    assert extreme == [
        {
            "code": "extreme_score",
            "severity": "reason_required",
            "params": {
                "bid": "B1",
                "expert": "E1",
                "criterion": "design",
                "score": "30",
                "end": "maximum",
            },
            "message": "Expert E1 gave 30 for 'design' on bid B1, the maximum of the scale: "
            "a written reason is required.",
            "reason": "Complete and original design",
        }
    ]
    low = [f["code"] for f in result["flags"] if f["params"]["bid"] == "B3"]
    assert low == ["abnormally_low_vs_mean", "abnormally_low_vs_next"]
    assert result["outcome"]["status"] == "ranked"  # warnings do not block


# --- determinism, canonical output, permutation invariance -----------------------------------


def test_output_is_canonical_and_deterministic():
    doc = example()
    first = dumps(score(doc))
    reordered = dict(reversed(list(doc.items())))
    assert dumps(score(reordered)) == first
    assert first.endswith("}\n")
    assert dumps(score(parse_json(first))) == first  # scoring a scored file replaces its result
    assert json.loads(first)["result"]["input_sha256"] == evaluation.input_sha256(doc)


def test_input_is_kept_verbatim():
    doc = example()
    doc["bids"][0]["price"] = "88000.0"
    out = score(doc)
    assert out["bids"][0]["price"] == "88000.0"
    assert {k: v for k, v in out.items() if k != "result"} == doc


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans())
def test_scoring_is_invariant_under_bid_order(rnd, tied):
    doc = synthetic_document(bids=7, experts=5, technical_criteria=2, seed=rnd.randint(0, 99))
    if tied:  # force ties on price to exercise the tie-breaks
        for bid in doc["bids"][:3]:
            bid["price"] = "1000000.00"
    shuffled = copy.deepcopy(doc)
    rnd.shuffle(shuffled["bids"])
    a, b = scored(doc), scored(shuffled)
    assert {x["id"]: x for x in a["bids"]} == {x["id"]: x for x in b["bids"]}
    for key in ("outcome", "ranking", "ties", "flags", "price", "panel"):
        if key == "price":
            assert a["price"]["valid_prices"] == b["price"]["valid_prices"]
            assert a["price"]["benchmark"] == b["price"]["benchmark"]
        else:
            assert a[key] == b[key], key


# --- schema -----------------------------------------------------------------------------------


def test_schema_is_a_valid_json_schema_and_accepts_scored_files():
    schema = evaluation.schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for doc in (example(), score(example()), score(synthetic_document(bids=5, experts=3))):
        assert list(validator.iter_errors(doc)) == []
    for method in ("average_benchmark", "lowest_evaluated_price"):
        assert (
            list(validator.iter_errors(score(price_only_document(["1", "2", "3"], method=method))))
            == []
        )


def _mutate(path, value):
    def apply(doc):
        target = doc
        for part in path[:-1]:
            target = target[part]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


DELETE = object()

# (description, mutation of the example, expected "path: message" (or its start))
BROKEN = [
    (
        "price as a JSON number",
        _mutate(["bids", 0, "price"], 88000.5),
        '$.bids[0].price: must be a decimal string such as "1000.00", not the number 88000.5',
    ),
    (
        "price as a JSON integer",
        _mutate(["bids", 0, "price"], 88000),
        '$.bids[0].price: must be a decimal string such as "1000.00", not the number 88000',
    ),
    (
        "price with an exponent",
        _mutate(["bids", 0, "price"], "8.8e4"),
        '$.bids[0].price: "8.8e4" is not a decimal string > 0 in plain notation',
    ),
    (
        "price with a trailing newline",
        _mutate(["bids", 0, "price"], "88000.00\n"),
        '$.bids[0].price: "88000.00\\n" is not a decimal string > 0',
    ),
    (
        "bid id with a trailing newline",
        _mutate(["bids", 0, "id"], "B1\n"),
        '$.bids[0].id: "B1\\n" is not an identifier without leading or trailing spaces',
    ),
    (
        "zero price",
        _mutate(["bids", 1, "price"], "0.00"),
        '$.bids[1].price: "0.00" is not a decimal string > 0',
    ),
    (
        "negative ceiling",
        _mutate(["ceiling_price"], "-1"),
        '$.ceiling_price: "-1" is not a decimal string > 0',
    ),
    (
        "price with too many digits",
        _mutate(["bids", 0, "price"], "1" * 30),
        '$.bids[0].price: "111111111111111111111111111111" is longer than 24 characters',
    ),
    (
        "unknown direction",
        _mutate(["direction"], "cheapest_wins"),
        "$.direction: 'cheapest_wins' is not one of ['lowest_wins', 'highest_wins']",
    ),
    ("no bids", _mutate(["bids"], DELETE), "$: 'bids' is a required property"),
    (
        "unknown top-level key",
        _mutate(["colour"], "red"),
        "$: Additional properties are not allowed ('colour' was unexpected)",
    ),
    (
        "min_bids as a string",
        _mutate(["min_bids"], "3"),
        "$.min_bids: '3' is not of type 'integer'",
    ),
    (
        "min_bids as 3.0",
        _mutate(["min_bids"], 3.0),
        "$.min_bids: must be integer, not the JSON number 3.0",
    ),
    (
        "technical score as a number",
        _mutate(["bids", 0, "technical", "E1", "design"], 22),
        '$.bids[0].technical.E1.design: must be a decimal string such as "1000.00", not the '
        "number 22",
    ),
    (
        "unknown technical criterion",
        _mutate(["bids", 0, "technical", "E1", "colour"], "3"),
        "$.bids[0].technical.E1: no technical criterion named 'colour'",
    ),
    (
        "sheet missing a criterion",
        _mutate(["bids", 1, "technical", "E2", "design"], DELETE),
        "$.bids[1].technical.E2: sheet has no score for 'design'",
    ),
    (
        "duplicate bid id",
        _mutate(["bids", 1, "id"], "B1"),
        "$.bids[1].id: duplicate id 'B1'",
    ),
    (
        "duplicate criterion key",
        _mutate(["technical_criteria", 1, "key"], "design"),
        "$.technical_criteria[1].key: duplicate key 'design'",
    ),
    (
        "method that does not fit the direction",
        _mutate(["direction"], "highest_wins"),
        "$.ceiling_price: a ceiling price applies to lowest_wins tenders only",
    ),
    (
        "sale scored with a procurement method",
        lambda doc: (doc.update(direction="highest_wins"), doc.pop("ceiling_price")),
        "$.price.method: lowest_price_benchmark does not fit direction highest_wins; use one "
        "of: highest_price",
    ),
    (
        "k of -1",
        lambda doc: doc.update(
            price={"method": "average_benchmark", "max_points": "40", "params": {"k": "-1"}}
        ),
        "$.price.params.k: k must be greater than -1",
    ),
    (
        "reserve price in procurement",
        _mutate(["reserve_price"], "10"),
        "$.reserve_price: a reserve price applies to highest_wins tenders only",
    ),
    (
        "lowest_evaluated_price with points",
        _mutate(["price"], {"method": "lowest_evaluated_price", "max_points": "10"}),
        '$.price.max_points: "10" is not "0" (lowest_evaluated_price gives no points)',
    ),
    (
        "unknown price method",
        _mutate(["price", "method"], "cheapest"),
        "$.price.method: 'cheapest' is not one of",
    ),
    (
        "missing max_points",
        _mutate(["price", "max_points"], DELETE),
        "$.price: 'max_points' is a required property",
    ),
    (
        "params for a method without any",
        _mutate(["price", "params"], {"k": "0.1"}),
        "$.price.params: Additional properties are not allowed ('k' was unexpected)",
    ),
    (
        "linear rule with lower >= upper",
        _mutate(["commercial_criteria", 0, "lower"], "60"),
        "$.commercial_criteria[0]: lower (60) must be less than upper (60)",
    ),
    (
        "linear rule without upper",
        _mutate(["commercial_criteria", 0, "upper"], DELETE),
        "$.commercial_criteria[0]: 'upper' is a required property",
    ),
    (
        "step worth more than the criterion",
        _mutate(["commercial_criteria", 1, "steps", 2, "points"], "6"),
        "$.commercial_criteria[1].steps[2].points: 6 exceeds the criterion's max_points 5",
    ),
    (
        "technical step of zero",
        _mutate(["technical_criteria", 0, "step"], "0"),
        '$.technical_criteria[0].step: "0" is not a decimal string > 0',
    ),
    (
        "empty failure reason",
        _mutate(["bids", 0, "compliance", "signed"], ""),
        "$.bids[0].compliance.signed: '' should be non-empty",
    ),
    (
        "draw zero",
        _mutate(["bids", 0, "draw"], 0),
        "$.bids[0].draw: 0 is less than the minimum of 1",
    ),
    (
        "adjustments outside lowest_evaluated_price",
        _mutate(["bids", 0, "adjustments"], [{"reason": "late", "amount": "10"}]),
        "$.bids[0].adjustments: adjustments are used by lowest_evaluated_price only",
    ),
    (
        "aggregation misspelt",
        _mutate(["aggregation"], "median"),
        "$.aggregation: 'median' is not one of ['mean', 'trimmed_mean', 'auto']",
    ),
    (
        "field name with a space",
        _mutate(["bids", 0, "fields", "delivery days"], "3"),
        '$.bids[0].fields: "delivery days" is not a name of letters, digits',
    ),
    (
        "numeric template rule with a text value",
        _mutate(["compliance_rules", "field_rules"], [{"field": "x", "op": "<=", "value": "a"}]),
        "$.compliance_rules.field_rules[0].value: op '<=' compares numbers",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_fails_with_a_precise_message(what, mutate, expected):
    doc = example()
    mutate(doc)
    with pytest.raises(ScoringFileError) as info:
        score(doc)
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith(expected) for m in messages), messages


def test_every_problem_is_reported_at_once():
    doc = example()
    doc["bids"][0]["price"] = 1.5
    doc["bids"][1]["price"] = "abc"
    doc["direction"] = "sideways"
    with pytest.raises(ScoringFileError) as info:
        score(doc)
    assert [p.path for p in info.value.problems] == [
        "$.bids[0].price",
        "$.bids[1].price",
        "$.direction",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"direction": NaN}', "$: not valid JSON: NaN is not allowed"),
        ('{"direction": "a", "direction": "b"}', "$: not valid JSON: duplicate key 'direction'"),
        ('{"direction": ', "$: not valid JSON: Expecting value (line 1, column 15)"),
        (b"\xff\xfe", "$: not UTF-8 text"),
    ],
)
def test_unparseable_text(text, expected):
    with pytest.raises(ScoringFileError) as info:
        load(text)
    assert str(info.value).startswith(expected)


def test_floats_never_appear_when_parsing():
    doc = parse_json('{"a": 1.25, "b": [0.1]}')
    assert repr(doc) == "{'a': Decimal('1.25'), 'b': [Decimal('0.1')]}"


# --- verify -----------------------------------------------------------------------------------


def test_verify_accepts_an_unaltered_file():
    assert verify(parse_json(dumps(score(example())))) == []


def test_verify_names_a_single_altered_score():
    doc = score(example())
    doc["result"]["bids"][1]["technical_score"]["total"] = "42.18"
    differences = verify(doc)
    assert [str(d) for d in differences] == [
        '$.result.bids[1].technical_score.total: file has "42.18", recomputed "42.17"'
    ]


def test_verify_detects_an_altered_input_score():
    doc = score(example())
    doc["bids"][0]["technical"]["E3"]["design"] = "21.5"  # was 20.5
    paths = [d.path for d in verify(doc)]
    assert "$.result.input_sha256" in paths
    assert "$.result.bids[0].technical_score.expert_totals.E3" in paths


def test_verify_requires_a_result():
    with pytest.raises(ScoringFileError, match="no result to verify"):
        verify(example())


def test_verify_reports_a_removed_entry():
    doc = score(example())
    doc["result"]["ranking"].pop()
    out = [str(d) for d in verify(doc)]
    assert out == ['$.result.ranking[2]: file has nothing, recomputed {"bid": "B3", "rank": 3}']


def test_synthetic_documents_are_reproducible():
    a = synthetic_document(bids=20, experts=5, technical_criteria=3, seed=7)
    assert a == synthetic_document(bids=20, experts=5, technical_criteria=3, seed=7)
    assert a != synthetic_document(bids=20, experts=5, technical_criteria=3, seed=8)


def test_every_schema_pattern_has_an_explanation():
    from evaluation.scoring_file import _PATTERN_TEXT

    patterns: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(evaluation.schema())
    assert patterns <= set(_PATTERN_TEXT)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


EXAMPLE_PATHS = [p for p in _paths(example()) if p]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from(["", "0", "-1", "1.5", "abc", "30", "E9", "B1", "mean", "linear"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), json_values), min_size=1, max_size=3))
def test_any_edit_either_scores_or_is_refused_with_problems(edits):
    doc = example()
    for path, value in edits:
        target = doc
        try:
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this place
    try:
        out = score(doc)
    except ScoringFileError as exc:
        assert exc.problems and all(p.path.startswith("$") for p in exc.problems)
    else:
        assert verify(out) == []
