"""The scoring file: load, validate, score, dump (canonical) and verify.

A scoring file is one JSON document holding everything an evaluation needs (its input) and,
under ``result``, everything computed from it.  It is what ``python -m evaluation`` reads,
what the app stores, and what the signed evaluation record embeds.  ``FORMAT_HELP`` below
describes it; ``scoring-file.schema.json`` beside this module is its JSON Schema.

JSON is parsed without floats (``parse_float=Decimal``), without NaN/Infinity and without
duplicate keys; money and scores must be decimal strings, so a JSON number there is an error
with a precise message.  Output is canonical: keys sorted, two-space indent, UTF-8, a final
newline; the same input always gives byte-identical output.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from evaluation.engine import ENGINE, evaluate, result_to_json
from evaluation.model import Problem, ScoringFileError, Tender, json_path, tender_from_document

SCHEMA_PATH = Path(__file__).with_name("scoring-file.schema.json")
FORMAT = "fairbid-scoring-file/1"

FORMAT_HELP = """\
THE SCORING FILE (one JSON document; JSON Schema: evaluation/scoring-file.schema.json)

All amounts, points, scores and percentages are decimal strings in plain notation ("1000.00",
"-0.05"; at most 24 characters); JSON numbers are refused there.  Counts are integers.

Input:
  format               optional, "fairbid-scoring-file/1"
  tender               optional {name: string} references (ids, lot, title), not computed on
  direction            "lowest_wins" (procurement) | "highest_wins" (sales)
  ceiling_price        optional (lowest_wins): a price above it fails compliance
  reserve_price        optional (highest_wins): a price below it fails compliance
  min_bids             default 3: fewer bids and they are not opened, the tender fails
  price                {method, max_points, params}
    method: lowest_price_benchmark  B = lowest valid price; score = max x B / price
            average_benchmark       sort valid prices; n >= drop_highest_from (6) drops the
                                    highest, n >= drop_lowest_from (7) the lowest too;
                                    B = mean x (1 + k); D = (price - B) / B x 100;
                                    score = max - above_per_pct x D when D > 0, else
                                    max - below_per_pct x |D|; never below 0.
                                    params: drop_highest_from, drop_lowest_from, k ("0"),
                                    above_per_pct ("1.0"), below_per_pct ("0.5")
            highest_price           B = highest valid price; score = max x price / B
            lowest_evaluated_price  no points (omit max_points or "0"); ranked by
                                    evaluated price = price + the bid's adjustments
    lowest_wins takes the first, second or fourth method; highest_wins takes highest_price.
  commercial_criteria  [{key, max_points, field, better: "lower"|"higher", rule, ...}]
    rule "linear": lower, upper; full points at the better bound, 0 at the other, linear
                   between, clamped outside
    rule "steps":  steps [{threshold, points}]; the most points among the steps reached
                   (value >= threshold when higher is better, <= when lower is better), else 0
  technical_criteria   [{key, max_points, step}]; every compliant bid needs a complete
                       sheet from every expert of the panel
  aggregation          "mean" | "trimmed_mean" | "auto" (default: trimmed when >= 5 experts);
                       the trimmed mean drops one highest and one lowest expert total
  technical_outlier_pct  default "30": a score further than this % of the criterion's
                       maximum from the panel mean needs a written reason
  abnormally_low       {below_mean_of_others_pct: "40", below_next_lowest_pct: "30"}
                       (null switches a test off); lowest_wins only
  compliance_rules     {required_fields: [field], required_documents: [name],
                        bid_bond: amount, required_checks: [check],
                        field_rules: [{field, op: < <= > >= == != in, value}]};
                       the fields a commercial criterion scores are required too
  bids                 [{id, price, fields: {name: string|boolean}, documents: [name],
                         bid_bond, compliance: {check: true | false | "reason it failed"},
                         compliance_override: {compliant, reason} (the panel's decision),
                         technical: {expert: {criterion: score}},
                         technical_reasons: {expert: {criterion: reason}},
                         adjustments: [{reason, amount}] (lowest_evaluated_price only),
                         draw: recorded lot-draw position (1 wins)}]
                       a bid without a price (its commercial part was unreadable) is
                       never compliant

Result (added by `score`, checked by `verify`):
  engine, input_sha256   the computation's version and the SHA-256 of the input part
                         (canonical compact JSON, keys sorted, UTF-8)
  outcome                {status: ranked | needs_draw | failed | invalid, code, params,
                          message, candidates: the top three}
  bids_received, compliant_bids, panel (the experts)
  price                  method, valid prices, benchmark B and for average_benchmark the
                         dropped prices, used prices, sum, mean, k; per bid the deviation D,
                         the raw score and the score (or the evaluated price)
  bids                   per bid: compliant, reasons [{code, params, message}], price_score,
                         evaluated_price, commercial_score {criteria, total},
                         technical_score {method, expert_totals, dropped_highest,
                         dropped_lowest, mean, criteria_means, total}, total, rank
  ranking, ties          the order; each tie on the main key with the tie-breaks used and
                         any group still needing a lot draw
  flags                  [{code, severity: error | reason_required | warning, params,
                          message, reason}]: scores off the step or outside [0, max]
                         (error: no ranking), scores at 0 or max and outliers (a reason is
                         required), abnormally low prices (warning)

Rounding: benchmarks, means and deviations keep full precision (28 digits); the price score,
each commercial criterion's score and the technical score are each rounded once to 2 places,
half up; the total is the sum of those rounded parts.  Ties: better price (lower for
lowest_wins, higher for highest_wins), then higher technical score, then the recorded draw.
"""


@dataclass(frozen=True)
class Difference:
    """A value of the recorded result that the recomputation does not reproduce."""

    path: str
    recorded: str
    recomputed: str

    def __str__(self) -> str:
        return f"{self.path}: file has {self.recorded}, recomputed {self.recomputed}"


@cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def schema() -> dict[str, Any]:
    """The JSON Schema of the scoring file (a copy: changing it changes nothing here)."""
    return copy.deepcopy(_schema())


_ANNOTATIONS = frozenset({"title", "description", "$comment"})


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """The schema with every local ``#/$defs/...`` reference replaced by its definition.

    Validation is equivalent (the schema has no recursive definitions) and about twice as
    fast: jsonschema resolves a ``$ref`` on every instance it checks.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target = _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
    if set(node) <= _ANNOTATIONS:
        return {**target, **{k: v for k, v in node.items() if k not in target}}
    return {**node, "allOf": [*node.get("allOf", []), target]}


def _is_integer(checker: Any, instance: Any) -> bool:
    # jsonschema counts 3.0 as an integer; a count here is never written with a fraction.
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _validator() -> Any:
    full = _schema()
    return _StrictValidator(_inline_refs(full, full.get("$defs", {})))


# --- parsing ------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json(text: str | bytes) -> Any:
    """Parse JSON without floats, NaN/Infinity or duplicate keys (``ScoringFileError``)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ScoringFileError([Problem("$", f"not UTF-8 text: {exc}")]) from exc
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_no_constant,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise ScoringFileError(
            [Problem("$", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
        ) from exc
    except ValueError as exc:
        raise ScoringFileError([Problem("$", f"not valid JSON: {exc}")]) from exc


# --- validation ---------------------------------------------------------------------------

_END = r"$(?!\n)"  # "$" that also refuses a final newline under Python's re (same in ECMA)
_PATTERN_TEXT = {
    r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?" + _END: 'a decimal string in plain notation, e.g. "1000.00"',
    r"^(0|[1-9][0-9]*)(\.[0-9]+)?" + _END: 'a decimal string >= 0 in plain notation, e.g. "12.5"',
    r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)" + _END: (
        'a decimal string > 0 in plain notation, e.g. "1000.00"'
    ),
    r"^0(\.0+)?" + _END: '"0" (lowest_evaluated_price gives no points)',
    r"^[A-Za-z_][A-Za-z0-9_.-]*" + _END: (
        "a name of letters, digits, _ . - starting with a letter or _"
    ),
    r"^\S(.*\S)?" + _END: "an identifier without leading or trailing spaces",
    r"^[0-9a-f]{64}" + _END: "a SHA-256 in lowercase hex",
}


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(error: ValidationError) -> str:
    instance = error.instance
    if error.validator == "type" and error.schema.get("title") == "decimal string":
        if isinstance(instance, int | float | Decimal) and not isinstance(instance, bool):
            return (
                f'must be a decimal string such as "1000.00", not the number {_show(instance)} '
                "(amounts are written as strings: JSON numbers pass through binary floating point)"
            )
        return f'must be a decimal string such as "1000.00", not {_show(instance)}'
    if error.validator == "type" and isinstance(instance, float | Decimal):
        return f"must be {error.validator_value}, not the JSON number {instance}"
    if error.validator == "pattern" and error.validator_value in _PATTERN_TEXT:
        return f"{_show(instance)} is not {_PATTERN_TEXT[error.validator_value]}"
    if error.validator == "maxLength" and error.schema.get("title") == "decimal string":
        return (
            f"{_show(instance)} is longer than {error.validator_value} characters "
            "(amounts stay short so that 28-digit arithmetic is exact)"
        )
    if error.validator == "const":
        return f"{_show(instance)} must be {_show(error.validator_value)}"
    return error.message


def _error_problem(error: ValidationError) -> Problem:
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the most relevant branch's failure rather than "not valid under any".
        return _error_problem(best_match(error.context))
    return Problem(json_path(list(error.absolute_path)), _message(error))


def schema_problems(doc: Any) -> list[Problem]:
    """Every JSON Schema violation of ``doc``, each with its path, sorted by path."""
    problems = {_error_problem(e) for e in _validator().iter_errors(doc)}
    return sorted(problems, key=lambda p: (p.path, p.message))


def input_part(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document without its ``result``."""
    return {k: v for k, v in doc.items() if k != "result"}


def validate(doc: Any, *, with_result: bool = False) -> Tender:
    """Validate a scoring file and return its ``Tender``; raise ``ScoringFileError``.

    The ``result`` part, if any, is ignored unless ``with_result`` (then it is required and
    must match the schema too).
    """
    if not isinstance(doc, Mapping):
        raise ScoringFileError([Problem("$", "a scoring file is a JSON object")])
    checked = dict(doc) if with_result else input_part(doc)
    problems = schema_problems(checked)
    if with_result and "result" not in doc:
        problems.append(Problem("$", "no result to verify: run `score` first"))
    if problems:
        raise ScoringFileError(problems)
    return tender_from_document(checked)


def load(text: str | bytes) -> dict[str, Any]:
    """Parse and validate a scoring file's text (its ``result`` is kept but not checked)."""
    doc = parse_json(text)
    validate(doc)
    loaded: dict[str, Any] = doc
    return loaded


def load_path(path: str | Path) -> dict[str, Any]:
    return load(Path(path).read_bytes())


# --- output -------------------------------------------------------------------------------


def dumps(doc: Mapping[str, Any]) -> str:
    """Canonical text: keys sorted, two-space indent, UTF-8 characters kept, final newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def input_sha256(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the input part as compact canonical JSON (keys sorted, UTF-8)."""
    text = json.dumps(input_part(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def score(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the input part of ``doc`` and return a copy with ``result`` filled in."""
    tender = validate(doc)
    evaluation = evaluate(tender)
    out = copy.deepcopy(input_part(doc))
    out["result"] = {
        "engine": ENGINE,
        "input_sha256": input_sha256(doc),
        **result_to_json(evaluation),
    }
    return out


def score_text(text: str | bytes) -> str:
    """Score a scoring file given as text; return the completed file as canonical text."""
    return dumps(score(parse_json(text)))


def verify(doc: Mapping[str, Any]) -> list[Difference]:
    """Recompute the result from the input part and list every difference (none: verified)."""
    validate(doc, with_result=True)
    recomputed = score(doc)["result"]
    differences: list[Difference] = []
    _diff(doc["result"], recomputed, ["result"], differences)
    return differences


def _diff(recorded: Any, fresh: Any, where: list[str | int], out: list[Difference]) -> None:
    if isinstance(recorded, dict) and isinstance(fresh, dict):
        for key in sorted(set(recorded) | set(fresh)):
            if key not in recorded:
                out.append(Difference(json_path([*where, key]), "nothing", _show(fresh[key])))
            elif key not in fresh:
                out.append(Difference(json_path([*where, key]), _show(recorded[key]), "nothing"))
            else:
                _diff(recorded[key], fresh[key], [*where, key], out)
        return
    if isinstance(recorded, list) and isinstance(fresh, list):
        for i in range(max(len(recorded), len(fresh))):
            if i >= len(recorded):
                out.append(Difference(json_path([*where, i]), "nothing", _show(fresh[i])))
            elif i >= len(fresh):
                out.append(Difference(json_path([*where, i]), _show(recorded[i]), "nothing"))
            else:
                _diff(recorded[i], fresh[i], [*where, i], out)
        return
    if type(recorded) is not type(fresh) or recorded != fresh:
        out.append(Difference(json_path(where), _show(recorded), _show(fresh)))


def is_pdf(data: bytes) -> bool:
    """True for a PDF (such as a signed evaluation record) rather than a scoring file."""
    return data.startswith(b"%PDF")
