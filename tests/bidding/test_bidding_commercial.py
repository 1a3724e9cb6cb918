"""The commercial part against the tender's form (bidding/commercial.py): properties of the
checker (every valid part passes, every corruption is caught and named, the kept fields are
always scoreable), the published specification's round trip, and `seal --fields`."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bidding.canonical import canonical_json
from bidding.commercial import (
    MAX_COMMERCIAL_SIZE,
    MAX_NUMBER_LENGTH,
    OPEN_SPEC,
    check_commercial,
    check_commercial_part,
    commercial_spec,
    load_spec,
    valid_fields,
)

TEMPLATE_FIELDS = [
    {"key": "price", "type": "money", "label": "Price"},
    {"key": "delivery_days", "type": "integer", "min": "1", "max": "90"},
    {"key": "rate", "type": "decimal", "required": False},
    {"key": "origin", "type": "choice", "choices": ["domestic", "imported"]},
    {"key": "start", "type": "date", "required": False},
    {"key": "note", "type": "text", "required": False, "max_length": 50},
]
SPEC = commercial_spec(TEMPLATE_FIELDS)
SCORING_DECIMAL = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?"

digits = st.text("0123456789", min_size=1, max_size=12).map(lambda t: t.lstrip("0") or "0")
money = st.builds(
    lambda whole, cents: whole + cents,
    digits.filter(lambda t: t != "0"),
    st.sampled_from(["", ".5", ".50", ".05"]),
)
valid_part = st.fixed_dictionaries(
    {
        "price": money,
        "delivery_days": st.integers(1, 90),
        "origin": st.sampled_from(["domestic", "imported"]),
    },
    optional={
        "rate": st.builds(lambda d, f: d + f, digits, st.sampled_from(["", ".25"])),
        "start": st.dates().map(lambda d: d.isoformat()),
        "note": st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=50).filter(
            lambda t: not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in t)
        ),
    },
)
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@given(valid_part)
def test_every_part_the_form_allows_passes(fields):
    assert check_commercial(SPEC, fields, bounds=True) == []
    checked = check_commercial_part(SPEC, canonical_json(fields))
    assert checked.problems == () and checked.fields == fields and checked.reason == ""


@given(valid_part, st.sampled_from([f["key"] for f in TEMPLATE_FIELDS]), junk)
def test_a_corrupted_field_is_named_and_never_kept(fields, key, value):
    corrupted = {**fields, key: value}
    problems = check_commercial(SPEC, corrupted)
    kept = valid_fields(SPEC, corrupted)
    if problems:
        assert any(json.dumps(key) == p.field for p in problems)
        assert key not in kept
    # Whatever is kept is what the scoring file can carry.
    for name, item in kept.items():
        if isinstance(item, str) and SPEC.field(name).type in ("money", "decimal"):
            assert len(item) <= MAX_NUMBER_LENGTH
        assert isinstance(item, str | int) and not isinstance(item, dict | list)


@given(valid_part, st.text(min_size=1, max_size=30), junk)
def test_unknown_fields_are_refused_and_dropped(fields, key, value):
    if key in fields or SPEC.field(key) is not None:
        return
    corrupted = {**fields, key: value}
    assert any(p.code == "unknown_field" for p in check_commercial(SPEC, corrupted))
    assert key not in valid_fields(SPEC, corrupted)


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_any_bytes_give_problems_or_fields_never_an_exception(data):
    checked = check_commercial_part(SPEC, data)
    assert checked.problems or checked.fields
    assert "\x00" not in checked.reason


@given(valid_part)
def test_a_missing_required_field_is_named(fields):
    for key in ("price", "delivery_days", "origin"):
        partial = {k: v for k, v in fields.items() if k != key}
        problems = check_commercial(SPEC, partial)
        assert [p.code for p in problems] == ["missing_field"]
        assert json.dumps(key) in problems[0].message


def test_the_probes_of_the_review():
    base = {"price": "100.00", "delivery_days": 10, "origin": "domestic"}
    cases = {
        "1" + "0" * 30: "number_too_long",
        "\u0661\u0662\u0663.\u0665\u0660": "not_money",  # Arabic-Indic digits
        "\uff11\uff12\uff13": "not_money",  # full-width digits
        "1e5": "not_money",
        "0": "not_positive",
        "0.00": "not_positive",
        "12.345": "not_money",
    }
    for price, code in cases.items():
        assert [p.code for p in check_commercial(SPEC, {**base, "price": price})] == [code]
    assert [p.code for p in check_commercial(SPEC, {**base, "price": 100})] == ["not_money"]
    for days in ("100", True, 1.5, Decimal(3), {"a": 1}, [1], 2**60):
        problems = check_commercial(SPEC, {**base, "delivery_days": days})
        assert problems and problems[0].field == '"delivery_days"'
    assert check_commercial(SPEC, {**base, "note": "x" * 51})[0].code == "text_too_long"
    assert check_commercial(SPEC, {**base, "note": "a\u202eb"})[0].code == "control_characters"
    assert check_commercial(SPEC, {**base, "start": "2025-02-30"})[0].code == "not_date"
    assert check_commercial(SPEC, {**base, "origin": "mars"})[0].code == "not_choice"
    # Bounds are compliance rules: reported before sealing only.
    assert check_commercial(SPEC, {**base, "delivery_days": 91}) == []
    assert [p.code for p in check_commercial(SPEC, {**base, "delivery_days": 91}, bounds=True)] == [
        "above_max"
    ]
    big = canonical_json({**base, "note": "x" * (1 << 20)})
    assert [p.code for p in check_commercial_part(SPEC, big).problems] == ["too_large"]
    assert check_commercial_part(SPEC, b"[1]").problems[0].code == "not_object"
    assert check_commercial_part(SPEC, b'{"price": 1.5}').problems[0].code == "not_json"
    assert len(big) > MAX_COMMERCIAL_SIZE


def test_the_specification_round_trips_and_the_open_one_accepts_plain_fields():
    assert load_spec(json.dumps(SPEC.to_json())) == SPEC
    assert load_spec(SPEC.to_json()).to_json()["fields"][0] == {
        "key": "price", "type": "money", "required": True,
    }  # fmt: skip
    assert commercial_spec([{"key": "days", "type": "integer"}]).fields[0].key == "price"
    fields = {"price": "10", "note": "x", "days": 3, "flag": True}
    assert check_commercial(OPEN_SPEC, fields) == []
    assert [p.code for p in check_commercial(OPEN_SPEC, {**fields, "bad key": 1})] == [
        "unknown_field"
    ]
    assert check_commercial(OPEN_SPEC, {**fields, "nested": {"a": 1}})[0].code == "unknown_field"


def test_seal_with_fields_refuses_a_part_off_the_form(tmp_path, python, cli_env):
    keys_dir = tmp_path / "keys"
    made = subprocess.run(
        [python, "-m", "bidding", "keygen", "--out", str(keys_dir), "--type", "tender"],
        capture_output=True, text=True, env=cli_env, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC.to_json()))
    (tmp_path / "tech.pdf").write_bytes(b"%PDF-1.7 proposal")

    def seal(fields: dict, *extra: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "bid.json").write_text(json.dumps(fields))
        return subprocess.run(
            [python, "-m", "bidding", "seal", "--tender-key", str(keys_dir / "tender.pub.pem"),
             "--tender", "T1", "--bidder", "B1", "--commercial", str(tmp_path / "bid.json"),
             "--technical", str(tmp_path / "tech.pdf"), "--out", str(tmp_path / "bid.env"),
             "--force", *extra],
            capture_output=True, text=True, env=cli_env, timeout=120, check=False,
        )  # fmt: skip

    good = {"price": "100.00", "delivery_days": 10, "origin": "domestic"}
    sealed = seal(good, "--fields", str(spec))
    assert sealed.returncode == 0, sealed.stderr
    bad = {**good, "price": "1" + "0" * 30, "bad key": 1, "delivery_days": "10"}
    refused = seal(bad, "--fields", str(spec))
    assert refused.returncode == 1
    assert 'unknown field "bad key"' in refused.stderr
    assert "31 characters" in refused.stderr and "whole number" in refused.stderr
    assert "does not follow the tender's form" in refused.stderr
    assert seal({**good, "delivery_days": 99}, "--fields", str(spec)).returncode == 1
    # Without the specification, the command seals what it is given (as before).
    assert seal(bad).returncode == 0
    (tmp_path / "broken.json").write_text("{}")
    assert seal(good, "--fields", str(tmp_path / "broken.json")).returncode == 2
