"""Load and validate tender templates; turn one into the input of an evaluation scoring file.

A template is a YAML document checked in three layers, every error reported with a dotted
path (``price.params.k``, ``technical_criteria.2.step``; ``""`` for the whole document) and
a message:

1. **YAML** (``load_template`` / ``validate_text``): ``yaml.safe_load`` semantics, plus: the
   document must be a mapping; duplicate keys, non-text keys, merge keys, anchors and aliases
   are refused (aliases also keep "billion laughs" documents out); the text is at most
   ``MAX_TEMPLATE_CHARS`` long.  Unquoted decimals such as ``0.05`` are YAML floats
   (binary floating point) and are refused wherever they appear, with a message telling to
   quote them: money, points and percentages are decimal strings, as in the scoring file.
2. **JSON Schema** (``template.schema.json``, draft 2020-12), with jsonschema's messages
   rewritten in plain words.
3. **Rules a schema cannot express**: category / direction / price method fit together (the
   evaluation's ``METHODS_BY_DIRECTION``); method parameters in range (``-0.2 <= k <= 0.2``,
   ``drop_lowest_from >= drop_highest_from``, ``above_per_pct`` / ``below_per_pct > 0``);
   price + commercial + technical maximum points add up to 100 (except
   ``lowest_evaluated_price``, which gives no points and takes no commercial criteria); a
   technical step divides its maximum; keys are unique; criteria and rules name existing
   fields of the right type; every placeholder of the body is known.  A section whose schema
   check failed is not checked further (its errors would only repeat).  Finally a template
   without errors is turned into a scoring file and checked by ``evaluation.validate`` and
   its body rendered with ``sample_context()``, so that a valid template always gives a
   valid scoring file and a renderable document.

``to_scoring_config(doc, tender_values)`` returns the input part of an evaluation scoring
file (``bids`` empty, to be filled in by the caller) for one competition (a lot):

- ``direction``, ``min_bids``, ``aggregation``, ``price``, ``commercial_criteria`` (without
  ``title``), ``technical_criteria`` (``key``, ``max_points``, ``step``),
  ``technical_outlier_pct`` and ``abnormally_low`` when the template sets them;
- ``ceiling_price`` / ``reserve_price`` from the tender values;
- ``compliance_rules``: ``required_fields`` = the fields marked required (default) other
  than ``price``, plus ``compliance.required_fields``; ``required_documents`` = the keys of
  the required qualification documents; ``bid_bond`` = the tender's bid bond;
  ``required_checks`` = ``compliance.required_checks`` plus ``technical_pass_<key>`` for
  each technical criterion with a ``pass_mark``; ``field_rules`` = ``compliance.field_rules``
  followed by the bounds of the required fields (``>= min``, ``<= max``, ``in choices``) —
  bids are sealed until the opening, so bounds can only be enforced there.

``pass_mark`` (``lowest_evaluated_price`` templates only): the panel scores the technical
criteria as usual; a bid whose panel score for a criterion is below its pass mark fails the
compliance check ``technical_pass_<key>``, which the app records in the bid's ``compliance``.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal, localcontext
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from app.tender_templates.errors import (
    TemplateError,
    TemplateRenderError,
    TemplateValidationError,
    dotted,
)
from app.tender_templates.rendering import (
    LOCALES,
    default_submission_days,
    placeholder_problems,
    render_markdown,
    sample_context,
)
from evaluation import ScoringFileError
from evaluation import validate as validate_scoring_file
from evaluation.decimals import fmt, is_decimal_string, parse_decimal
from evaluation.model import METHODS_BY_DIRECTION, Direction

FORMAT = "fairbid-template/1"
SCORING_FORMAT = "fairbid-scoring-file/1"
MAX_TEMPLATE_CHARS = 262_144
K_MIN, K_MAX = Decimal("-0.2"), Decimal("0.2")
MAX_STEPS = 10_000  # steps on one technical criterion's scale
TOTAL_POINTS = Decimal(100)
NUMERIC_TYPES = ("money", "integer", "decimal")
PASS_CHECK_PREFIX = "technical_pass_"  # noqa: S105 (a check name, not a secret)
DEFAULT_BID_BOND_MAX_PCT = "2"
_NUMERIC_OPS = ("<", "<=", ">", ">=")

Path = tuple[str | int, ...]


# --- YAML -------------------------------------------------------------------------------------


class YamlFloat(float):
    """A YAML float kept with its source text, so that an error can quote what was written."""

    text: str

    def __new__(cls, value: float, text: str | None = None) -> YamlFloat:
        obj = super().__new__(cls, value)
        obj.text = text if text is not None else repr(float(value))
        return obj


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Unreadable(Exception):
    def __init__(self, error: TemplateError) -> None:
        super().__init__(str(error))
        self.error = error


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` without anchors and aliases, keeping floats' text, first key wins.

    Duplicate and non-text keys are reported (with their path) by ``_node_problems``; here
    they are skipped so that construction never fails on them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1
            raise _Unreadable(
                TemplateError(
                    "",
                    f"aliases (*{event.anchor}) are not supported: write the value out "
                    f"(line {line})",
                    line,
                )
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            line = event.start_mark.line + 1
            raise _Unreadable(
                TemplateError(
                    "",
                    f"anchors (&{anchor}) are not supported: write the value out (line {line})",
                    line,
                )
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                continue
            key = key_node.value
            if key not in mapping:
                mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> YamlFloat:
    return YamlFloat(loader.construct_yaml_float(node), node.value)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


_KEY_KINDS = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


def _node_problems(root: Any) -> tuple[dict[str, int], list[TemplateError]]:
    """The line of every path, and the duplicate / non-text / merge keys, from the node tree."""
    lines: dict[str, int] = {"": root.start_mark.line + 1}
    problems: list[TemplateError] = []
    stack: list[tuple[Any, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    problems.append(
                        TemplateError(
                            dotted(path), f"merge keys (<<) are not supported (line {line})", line
                        )
                    )
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "…"
                    kind = _KEY_KINDS.get(key_node.tag, "not text")
                    problems.append(
                        TemplateError(
                            dotted(path),
                            f"the key {shown} on line {line} is read as {kind}: keys are text; "
                            "quote it",
                            line,
                        )
                    )
                    continue
                key = key_node.value
                child = (*path, key)
                if key in seen:
                    problems.append(
                        TemplateError(
                            dotted(child),
                            f"duplicate key '{key}' on line {line} (first on line {seen[key]})",
                            line,
                        )
                    )
                    continue
                seen[key] = line
                lines[dotted(child)] = line
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(dotted((*path, i)), item.start_mark.line + 1)
                stack.append((item, (*path, i)))
    return lines, problems


def _yaml_error(exc: yaml.YAMLError) -> TemplateError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is not None:
            line = mark.line + 1
            where = f"line {line}, column {mark.column + 1}"
            context = exc.context if exc.problem else None
            if context and problem.startswith("but "):  # "expected X" + "but found Y"
                problem, context = f"{context} {problem}", None
            if context:
                where += f"; {context}"
                if exc.context_mark is not None and exc.context_mark.line != mark.line:
                    where += f" from line {exc.context_mark.line + 1}"
            return TemplateError("", f"not valid YAML: {problem} ({where})", line)
        return TemplateError("", f"not valid YAML: {problem}")
    return TemplateError("", f"not valid YAML: {exc}")


@dataclass
class _Parsed:
    doc: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[TemplateError] = field(default_factory=list)


def _parse(text: str | bytes) -> _Parsed:
    """Parse template text; ``_Unreadable`` when there is no document to check at all."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _Unreadable(TemplateError("", f"not UTF-8 text: {exc}")) from exc
    if not isinstance(text, str):
        raise _Unreadable(TemplateError("", "a template is YAML text"))
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _Unreadable(
            TemplateError(
                "", f"the template is longer than {MAX_TEMPLATE_CHARS} characters ({len(text)})"
            )
        )
    try:
        loader = _Loader(text)  # its reader refuses control characters at once
    except yaml.YAMLError as exc:
        raise _Unreadable(_yaml_error(exc)) from exc
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Unreadable(TemplateError("", "the template is empty"))
        lines, problems = _node_problems(node)
        doc = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _Unreadable(_yaml_error(exc)) from exc
    except RecursionError as exc:
        raise _Unreadable(TemplateError("", "the template is nested too deeply")) from exc
    finally:
        loader.dispose()
    if not isinstance(doc, Mapping):
        raise _Unreadable(_not_mapping(doc))
    return _Parsed(doc, lines, problems)


def _not_mapping(doc: Any) -> TemplateError:
    return TemplateError(
        "", f"a template is a YAML mapping of keys to values (key: value), not {_describe(doc)}"
    )


def load_template(text: str | bytes) -> dict[str, Any]:
    """Parse a template's YAML text into a dict; raise ``TemplateValidationError``.

    Refuses what ``validate_text`` refuses at the YAML level: invalid YAML (the message gives
    line and column), an empty document or one that is not a mapping, duplicate or non-text
    keys, anchors and aliases, and floats (``k: -0.05`` must be written ``k: "-0.05"``).  It
    does not run the schema and rule checks: use ``validate_template`` on the result.
    """
    try:
        parsed = _parse(text)
    except _Unreadable as exc:
        raise TemplateValidationError([exc.error]) from None
    errors = parsed.problems + _float_errors(parsed.doc)
    if errors:
        raise TemplateValidationError(_with_lines(errors, parsed.lines))
    loaded: dict[str, Any] = dict(parsed.doc)
    return loaded


def validate_text(text: str | bytes) -> list[TemplateError]:
    """Every error of a template given as YAML text (empty list: the template is valid)."""
    try:
        parsed = _parse(text)
    except _Unreadable as exc:
        return [exc.error]
    return _with_lines(parsed.problems + validate_template(parsed.doc), parsed.lines)


def _with_lines(errors: Sequence[TemplateError], lines: Mapping[str, int]) -> list[TemplateError]:
    out = []
    for error in errors:
        line = error.line
        path = error.path
        while line is None:
            if path in lines:
                line = lines[path]
            elif not path:
                break
            path = path.rpartition(".")[0]
        out.append(TemplateError(error.path, error.message, line))
    unique = list(dict.fromkeys(out))
    return sorted(unique, key=lambda e: (e.path != "", e.line or 0, _path_key(e.path), e.message))


# --- describing values ------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, YamlFloat):
        return value.text
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if value is None:
        return "null (an empty value)"
    if isinstance(value, float | int | Decimal):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    if isinstance(value, date):
        return f"the date {value.isoformat()} (quote it to make it text)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__} value"


# --- JSON Schema ------------------------------------------------------------------------------


@cache
def _schema() -> dict[str, Any]:
    text = files("app.tender_templates").joinpath("template.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema() -> dict[str, Any]:
    """The JSON Schema of a template (a copy)."""
    return copy.deepcopy(_schema())


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _validator() -> Any:
    return _StrictValidator(_schema())


_END = r"$(?!\n)"
_PATTERN_TEXT = {
    r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?" + _END: "must be a decimal string in plain notation such "
    'as "-0.05"',
    r"^(0|[1-9][0-9]*)(\.[0-9]+)?" + _END: "must be a decimal string >= 0 in plain notation "
    'such as "12.5"',
    r"^(0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)" + _END: "must be a decimal string > 0 "
    'in plain notation such as "0.5"',
    r"^0(\.0+)?" + _END: 'must be "0" or left out: lowest_evaluated_price gives no points',
    r"^[a-z][a-z0-9_]*" + _END: "must be lowercase letters, digits and _, starting with a letter",
    r"^[a-z][a-z0-9_-]*" + _END: "must be lowercase letters, digits, _ and -, starting with a "
    "letter",
}
_TYPE_TEXT = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}


def _type_message(error: ValidationError) -> str:
    instance = error.instance
    if error.schema.get("title") == "decimal string":
        if isinstance(instance, float) and not isinstance(instance, bool):
            text = _show(instance)
            return (
                f'must be a decimal string: write "{text}" in quotes (YAML reads an unquoted '
                f"{text} as a binary floating-point number)"
            )
        if isinstance(instance, int) and not isinstance(instance, bool):
            return f'must be a decimal string: write "{instance}" in quotes'
        return f'must be a decimal string such as "12.5", not {_describe(instance)}'
    expected = error.validator_value
    names = expected if isinstance(expected, list) else [expected]
    wanted = " or ".join(_TYPE_TEXT.get(n, n) for n in names)
    return f"must be {wanted}, not {_describe(instance)}"


def _duplicate_item(items: Sequence[Any]) -> Any:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _convert(error: ValidationError, doc: Any) -> list[tuple[Path, str, Any]]:
    """(path, message, offending value) for one jsonschema error."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _convert(best_match(error.context), doc)
    path: Path = tuple(error.absolute_path)
    validator = error.validator
    value = error.validator_value
    instance = error.instance
    if validator == "required" and isinstance(instance, Mapping):
        return [((*path, name), "is required", None) for name in value if name not in instance]
    if validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(error.schema.get("properties", {}))
        out = []
        for key in instance:
            if key in allowed:
                continue
            if not allowed:
                if path == ("price", "params"):
                    method = doc.get("price", {}).get("method")
                    message = f"{method} takes no parameters"
                else:
                    message = "no keys are allowed here"
            else:
                close = difflib.get_close_matches(str(key), allowed, 1)
                message = (
                    f"unknown key: did you mean '{close[0]}'?"
                    if close
                    else "unknown key; allowed here: " + ", ".join(allowed)
                )
            out.append(((*path, key), message, instance[key]))
        return out
    if validator == "type":
        message = _type_message(error)
    elif validator == "pattern" and value in _PATTERN_TEXT:
        message = f"{_PATTERN_TEXT[value]}, not {_show(instance)}"
    elif validator == "enum":
        message = "must be one of: " + ", ".join(map(str, value))
        if isinstance(instance, str):
            close = difflib.get_close_matches(instance, [str(v) for v in value], 1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message += f"; not {_show(instance)}{hint}"
        else:
            message += f"; not {_describe(instance)}"
    elif validator == "const":
        message = f"must be {_show(value)}"
    elif validator == "contains":
        message = "must include the price field (key: price, type: money)"
    elif validator == "minimum":
        message = f"must be at least {value}"
    elif validator == "maximum":
        message = f"must be at most {value}"
    elif validator == "minLength":
        message = "must not be empty" if value == 1 else f"must be at least {value} characters"
    elif validator == "maxLength":
        message = f"must be at most {value} characters long"
    elif validator == "minItems":
        message = f"must have at least {value} item{'s' if value != 1 else ''}"
    elif validator == "maxItems":
        message = f"must have at most {value} items"
    elif validator == "uniqueItems":
        message = f"lists {_show(_duplicate_item(instance))} more than once"
    else:
        message = error.message
    return [(path, message, instance)]


def _schema_errors(doc: Any) -> list[tuple[Path, str, Any]]:
    out: list[tuple[Path, str, Any]] = []
    for error in _validator().iter_errors(doc):
        out.extend(_convert(error, doc))
    return out


def _float_errors(doc: Any) -> list[TemplateError]:
    """Every float in the document: from the schema where it says more, else a plain note."""
    errors = []
    reported: set[str] = set()
    for path, message, value in _schema_errors(doc):
        if isinstance(value, float) and not isinstance(value, bool):
            errors.append(TemplateError(dotted(path), message))
            reported.add(dotted(path))
    for path, value in _walk_values(doc):
        if isinstance(value, float) and dotted(path) not in reported:
            text = _show(value)
            errors.append(
                TemplateError(
                    dotted(path),
                    f"{text} is a binary floating-point number in YAML: write decimals as "
                    f'quoted strings, e.g. "{text}"',
                )
            )
    return errors


def _walk_values(doc: Any) -> Iterator[tuple[Path, Any]]:
    stack: list[tuple[Path, Any]] = [((), doc)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, Mapping):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))


def _path_key(path: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in path.split(".") if p
    )


# --- rules the schema cannot express --------------------------------------------------------


def _dec(value: str) -> Decimal:
    return parse_decimal(value)


def _fmt(value: Decimal) -> str:
    return fmt(value.normalize()) if value == value.to_integral_value() else fmt(value)


class _Checks:
    """Semantic checks on the sections that passed the schema."""

    def __init__(self, doc: Mapping[str, Any], bad_sections: set[str]) -> None:
        self.doc = doc
        self.bad = bad_sections
        self.errors: list[TemplateError] = []

    def ok(self, *sections: str) -> bool:
        return not self.bad.intersection(sections)

    def add(self, path: Sequence[str | int], message: str) -> None:
        self.errors.append(TemplateError(dotted(path), message))

    def run(self) -> list[TemplateError]:
        if self.ok("category", "direction"):
            self.category_direction()
        if self.ok("price", "direction"):
            self.method_direction()
        if self.ok("price"):
            self.price_params()
        if self.ok("commercial_fields"):
            self.fields()
        if self.ok("qualification_documents"):
            self.unique("qualification_documents")
        if self.ok("technical_criteria"):
            self.technical()
        if self.ok("commercial_criteria", "commercial_fields"):
            self.commercial()
        if self.ok("price", "commercial_criteria", "technical_criteria"):
            self.points()
        if self.ok("compliance", "direction", "commercial_fields", "technical_criteria"):
            self.compliance()
        if (
            self.ok("abnormally_low", "direction")
            and "abnormally_low" in self.doc
            and self.doc["direction"] == Direction.HIGHEST_WINS
        ):
            self.add(["abnormally_low"], "applies to lowest_wins tenders only")
        if self.ok("submission_days_min", "addendum_min_days", "category"):
            self.schedule()
        if self.ok("panel_min_size") and self.doc.get("panel_min_size", 5) % 2 == 0:
            self.add(["panel_min_size"], "must be odd: 3, or 5 or more")
        if self.ok("body"):
            for path, source in _body_sources(self.doc):
                for message in placeholder_problems(source):
                    self.errors.append(TemplateError(path, message))
        return self.errors

    def method(self) -> str | None:
        """The price method, when the price section passed the schema."""
        return self.doc["price"]["method"] if self.ok("price") else None

    # -- sections

    def category_direction(self) -> None:
        category, direction = self.doc["category"], self.doc["direction"]
        expected = "highest_wins" if category == "asset_sale" else "lowest_wins"
        if direction != expected:
            self.add(["direction"], f"must be {expected} for category {category}")

    def method_direction(self) -> None:
        method, direction = self.doc["price"]["method"], Direction(self.doc["direction"])
        allowed = METHODS_BY_DIRECTION[direction]
        if method not in allowed:
            self.add(
                ["price", "method"],
                f"{method} does not fit direction {direction}; use one of: "
                + ", ".join(sorted(allowed)),
            )

    def price_params(self) -> None:
        price = self.doc["price"]
        method = price["method"]
        if method != "lowest_evaluated_price" and _dec(price["max_points"]) <= 0:
            self.add(["price", "max_points"], f"must be greater than 0 for {method}")
        if method != "average_benchmark":
            return
        params = price.get("params", {})
        where = ["price", "params"]
        if "k" in params:
            k = _dec(params["k"])
            if not K_MIN <= k <= K_MAX:
                self.add([*where, "k"], f"must be between -0.2 and 0.2, not {params['k']}")
        high = params.get("drop_highest_from", 6)
        low = params.get("drop_lowest_from", 7)
        if low < high:
            default = "" if "drop_lowest_from" in params else " (7 when not set)"
            self.add(
                [*where, "drop_lowest_from"],
                f"must be at least drop_highest_from ({high}){default}: the lowest price is "
                "dropped only when the highest is",
            )
        elif low < 3:
            self.add(
                [*where, "drop_lowest_from"],
                "must be at least 3: with two prices, dropping both leaves no benchmark",
            )
        for name in ("above_per_pct", "below_per_pct"):
            if name in params and _dec(params[name]) <= 0:
                self.add([*where, name], "must be greater than 0")

    def unique(self, section: str, name: str = "key") -> None:
        first: dict[Any, int] = {}
        for i, item in enumerate(self.doc.get(section, [])):
            value = item[name]
            if value in first:
                self.add(
                    [section, i, name],
                    f"duplicate {name} '{value}' (also {section}.{first[value]}.{name})",
                )
            else:
                first[value] = i

    def fields(self) -> None:
        self.unique("commercial_fields")
        for i, f in enumerate(self.doc["commercial_fields"]):
            where: list[str | int] = ["commercial_fields", i]
            kind = f["type"]
            if f["key"] == "price":
                if f.get("required") is False:
                    self.add([*where, "required"], "the price is always required")
                for bound in ("min", "max"):
                    if bound in f:
                        self.add(
                            [*where, bound],
                            "the price is bounded by the tender's ceiling or reserve price, "
                            "not by min / max",
                        )
                continue
            for bound in ("min", "max"):
                if bound not in f:
                    continue
                if kind not in NUMERIC_TYPES:
                    self.add([*where, bound], "only money, integer and decimal fields have bounds")
                elif kind == "integer" and "." in f[bound]:
                    self.add([*where, bound], "must be a whole number for an integer field")
            if (
                kind in NUMERIC_TYPES
                and "min" in f
                and "max" in f
                and _dec(f["max"]) < _dec(f["min"])
            ):
                self.add([*where, "max"], f"must not be less than min ({f['min']})")
            if "choices" in f and kind != "choice":
                self.add([*where, "choices"], "only a choice field has choices")
            if "max_length" in f and kind != "text":
                self.add([*where, "max_length"], "only a text field has max_length")

    def technical(self) -> None:
        self.unique("technical_criteria")
        lep = self.method() == "lowest_evaluated_price"
        for i, c in enumerate(self.doc.get("technical_criteria", [])):
            where: list[str | int] = ["technical_criteria", i]
            max_points, step = _dec(c["max_points"]), _dec(c["step"])
            if step > max_points:
                self.add(
                    [*where, "step"], f"must not be larger than max_points ({c['max_points']})"
                )
            elif max_points / step > MAX_STEPS:
                self.add(
                    [*where, "step"],
                    f"is too small: at most {MAX_STEPS} steps from 0 to max_points "
                    f"({c['max_points']})",
                )
            elif max_points % step != 0:
                self.add(
                    [*where, "step"],
                    f"{c['step']} does not divide max_points {c['max_points']}: scores go in "
                    "steps from 0 to the maximum",
                )
            if "pass_mark" not in c or self.method() is None:
                continue
            if not lep:
                self.add(
                    [*where, "pass_mark"],
                    "pass marks are for lowest_evaluated_price templates only: with points, "
                    "the technical score counts in the total",
                )
            elif _dec(c["pass_mark"]) > max_points:
                self.add(
                    [*where, "pass_mark"], f"must not be larger than max_points ({c['max_points']})"
                )
            elif _dec(c["pass_mark"]) % step != 0:
                self.add([*where, "pass_mark"], f"must be a multiple of the step {c['step']}")

    def commercial(self) -> None:
        criteria = self.doc.get("commercial_criteria", [])
        if criteria and self.method() == "lowest_evaluated_price":
            self.add(
                ["commercial_criteria"],
                "lowest_evaluated_price gives no points: remove the commercial criteria (put "
                "minimum requirements in compliance.field_rules)",
            )
            return
        self.unique("commercial_criteria")
        fields = {f["key"]: f for f in self.doc["commercial_fields"]}
        for i, c in enumerate(criteria):
            where: list[str | int] = ["commercial_criteria", i]
            name = c["field"]
            target = fields.get(name)
            if name == "price":
                self.add(
                    [*where, "field"],
                    "the price is scored by price.method, not by a commercial criterion",
                )
            elif target is None:
                self.add([*where, "field"], f"no commercial field has the key '{name}'")
            elif target["type"] not in NUMERIC_TYPES:
                self.add(
                    [*where, "field"],
                    f"'{name}' is a {target['type']} field; a criterion scores money, integer "
                    "or decimal fields",
                )
            elif target.get("required") is False:
                self.add(
                    [*where, "field"],
                    f"'{name}' is scored, so the field must be required (it has required: false)",
                )
            self.criterion_rule(c, where)

    def criterion_rule(self, c: Mapping[str, Any], where: list[str | int]) -> None:
        max_points = _dec(c["max_points"])
        if c["rule"] == "linear":
            if "steps" in c:
                self.add([*where, "steps"], "steps belong to rule 'steps', not 'linear'")
            if _dec(c["lower"]) >= _dec(c["upper"]):
                self.add([*where, "upper"], f"must be greater than lower ({c['lower']})")
            return
        for name in ("lower", "upper"):
            if name in c:
                self.add([*where, name], f"{name} belongs to rule 'linear', not 'steps'")
        steps = c["steps"]
        for j, step in enumerate(steps):
            if _dec(step["points"]) > max_points:
                self.add(
                    [*where, "steps", j, "points"],
                    f"{step['points']} exceeds the criterion's max_points {c['max_points']}",
                )
        thresholds = [_dec(s["threshold"]) for s in steps]
        if len(set(thresholds)) != len(thresholds):
            self.add([*where, "steps"], "two steps have the same threshold")
        best = max(_dec(s["points"]) for s in steps)
        if best < max_points:
            self.add(
                [*where, "steps"],
                f"the best step gives {_fmt(best)} points; one step must give max_points "
                f"({c['max_points']})",
            )

    def points(self) -> None:
        price = self.doc["price"]
        if price["method"] == "lowest_evaluated_price":
            return
        p = _dec(price["max_points"])
        c = sum(
            (_dec(x["max_points"]) for x in self.doc.get("commercial_criteria", [])), Decimal(0)
        )
        t = sum((_dec(x["max_points"]) for x in self.doc.get("technical_criteria", [])), Decimal(0))
        total = p + c + t
        if total != TOTAL_POINTS:
            self.add(
                ["price", "max_points"],
                f"price {_fmt(p)} + commercial {_fmt(c)} + technical {_fmt(t)} = {_fmt(total)} "
                "points; the maximum points must add up to 100",
            )

    def compliance(self) -> None:
        rules = self.doc.get("compliance", {})
        direction = self.doc["direction"]
        where = ["compliance"]
        if rules.get("ceiling_price_required") and direction != "lowest_wins":
            self.add(
                [*where, "ceiling_price_required"], "a ceiling price applies to lowest_wins only"
            )
        if rules.get("reserve_price_required") and direction != "highest_wins":
            self.add(
                [*where, "reserve_price_required"], "a reserve price applies to highest_wins only"
            )
        fields = {f["key"]: f for f in self.doc["commercial_fields"]}
        for i, name in enumerate(rules.get("required_fields", [])):
            if name == "price":
                self.add([*where, "required_fields", i], "the price is always required")
            elif name not in fields:
                self.add(
                    [*where, "required_fields", i], f"no commercial field has the key '{name}'"
                )
        pass_checks = {
            PASS_CHECK_PREFIX + c["key"]: c["key"]
            for c in self.doc.get("technical_criteria", [])
            if "pass_mark" in c
        }
        for i, check in enumerate(rules.get("required_checks", [])):
            if check in pass_checks:
                self.add(
                    [*where, "required_checks", i],
                    f"'{check}' is the check of technical criterion '{pass_checks[check]}''s "
                    "pass mark, added automatically",
                )
        for i, rule in enumerate(rules.get("field_rules", [])):
            self.field_rule(rule, [*where, "field_rules", i], fields)

    def field_rule(
        self, rule: Mapping[str, Any], where: list[str | int], fields: Mapping[str, Any]
    ) -> None:
        name, op, value = rule["field"], rule["op"], rule["value"]
        if name == "price":
            self.add(
                [*where, "field"],
                "the price is checked against the ceiling or reserve price, not by a field rule",
            )
            return
        target = fields.get(name)
        if target is None:
            self.add([*where, "field"], f"no commercial field has the key '{name}'")
            return
        kind = target["type"]
        if op == "in":
            if not isinstance(value, list):
                self.add([*where, "value"], "op 'in' needs a list of values")
                return
            values = value
        else:
            if isinstance(value, list):
                self.add([*where, "value"], f"op '{op}' needs a single value, not a list")
                return
            values = [value]
        if op in _NUMERIC_OPS and kind not in NUMERIC_TYPES:
            self.add([*where, "op"], f"'{op}' compares numbers, but '{name}' is a {kind} field")
            return
        for j, item in enumerate(values):
            spot = [*where, "value", j] if op == "in" else [*where, "value"]
            if kind in NUMERIC_TYPES and not is_decimal_string(item):
                self.add(spot, f"must be a decimal string: '{name}' is a {kind} field")
            elif kind == "choice" and item not in target["choices"]:
                self.add(
                    spot,
                    f"{_show(item)} is not one of the choices of '{name}': "
                    + ", ".join(target["choices"]),
                )

    def schedule(self) -> None:
        days = self.doc.get("submission_days_min") or default_submission_days(self.doc["category"])
        addendum = self.doc.get("addendum_min_days", 15)
        if addendum >= days:
            self.add(["addendum_min_days"], f"must be less than submission_days_min ({days})")


def _body_sources(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    body = doc["body"]
    if isinstance(body, Mapping):
        return [(f"body.{lang}", body[lang]) for lang in LOCALES if lang in body]
    return [("body", body)]


# --- validation -------------------------------------------------------------------------------


def validate_template(doc: Any) -> list[TemplateError]:
    """Every error of a parsed template (empty list: valid), sorted by path."""
    if not isinstance(doc, Mapping):
        return [_not_mapping(doc)]
    # Decimal strings are at most 24 characters: 120 digits keep every check exact.
    with localcontext(Context(prec=120)):
        return _validate(doc)


def _validate(doc: Mapping[str, Any]) -> list[TemplateError]:
    found = _schema_errors(doc)
    errors = [TemplateError(dotted(path), message) for path, message, _ in found]
    bad = {str(path[0]) if path else "" for path, _, _ in found}
    if "" not in bad:
        errors += _Checks(doc, bad).run()
    if not errors:
        errors += _evaluation_errors(doc)
    if not errors:
        errors += _render_errors(doc)
    unique = list(dict.fromkeys(errors))
    return sorted(unique, key=lambda e: (_path_key(e.path), e.message))


_JSON_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*')\]")


def _from_json_path(path: str) -> str:
    parts: list[str] = [
        m.group(1) or m.group(2) or m.group(3).strip("'")
        for m in _JSON_PATH_PART.finditer(path.removeprefix("$"))
    ]
    if parts and parts[0] == "compliance_rules":
        return "compliance"
    return ".".join(parts)


def _evaluation_errors(doc: Mapping[str, Any]) -> list[TemplateError]:
    """The evaluation's own checks on the scoring file this template makes (a safety net)."""
    direction = doc["direction"]
    config = _scoring_config(
        doc,
        ceiling="1" if direction == "lowest_wins" else None,
        reserve="1" if direction == "highest_wins" else None,
        bond="1",
        refs=None,
    )
    try:
        validate_scoring_file(config)
    except ScoringFileError as exc:
        return [
            TemplateError(_from_json_path(p.path), f"{p.message} (evaluation)")
            for p in exc.problems
        ]
    return []


def _render_errors(doc: Mapping[str, Any]) -> list[TemplateError]:
    context = sample_context(doc["category"])
    errors: list[TemplateError] = []
    for path, _ in _body_sources(doc):
        locale = path.partition(".")[2] or "en"
        try:
            render_markdown(doc, context, locale)
        except TemplateRenderError as exc:
            errors += [TemplateError(path, e.message) for e in exc.errors]
    return errors


# --- defaults and the scoring file ------------------------------------------------------------


def apply_defaults(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a valid template with every default written out.

    ``aggregation`` auto, ``min_bids`` 3, ``submission_days_min`` per category (works 20,
    goods 20, services 20, asset_sale 20), ``addendum_min_days`` 15, fields and documents
    ``required: true``, empty lists for absent criteria and documents, and ``compliance``
    with every flag (``bid_bond_max_pct`` "2" for procurement, null for sales).
    """
    out = copy.deepcopy(dict(doc))
    out.setdefault("aggregation", "auto")
    out.setdefault("min_bids", 3)
    out.setdefault("submission_days_min", default_submission_days(out.get("category")))
    out.setdefault("addendum_min_days", 15)
    for name in ("qualification_documents", "commercial_criteria", "technical_criteria"):
        out.setdefault(name, [])
    for item in [*out.get("commercial_fields", []), *out["qualification_documents"]]:
        item.setdefault("required", True)
    out.get("price", {}).setdefault("params", {})
    compliance = out.setdefault("compliance", {})
    for flag in ("ceiling_price_required", "reserve_price_required", "bid_bond_required"):
        compliance.setdefault(flag, False)
    compliance.setdefault(
        "bid_bond_max_pct",
        DEFAULT_BID_BOND_MAX_PCT if out.get("direction") == "lowest_wins" else None,
    )
    for name in ("required_fields", "required_checks", "field_rules"):
        compliance.setdefault(name, [])
    return out


def _bound_rules(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for f in doc["commercial_fields"]:
        if f["key"] == "price" or f.get("required") is False:
            continue
        if f["type"] in NUMERIC_TYPES:
            if "min" in f:
                rules.append({"field": f["key"], "op": ">=", "value": f["min"]})
            if "max" in f:
                rules.append({"field": f["key"], "op": "<=", "value": f["max"]})
        elif f["type"] == "choice":
            rules.append({"field": f["key"], "op": "in", "value": list(f["choices"])})
    return rules


def _scoring_config(
    doc: Mapping[str, Any],
    *,
    ceiling: str | None,
    reserve: str | None,
    bond: str | None,
    refs: Mapping[str, str] | None,
) -> dict[str, Any]:
    direction = doc["direction"]
    price_in = doc["price"]
    price: dict[str, Any] = {"method": price_in["method"]}
    if price_in["method"] != "lowest_evaluated_price":
        price["max_points"] = price_in["max_points"]
    if price_in.get("params"):
        price["params"] = copy.deepcopy(price_in["params"])
    compliance = doc.get("compliance", {})
    required_fields = [
        f["key"]
        for f in doc["commercial_fields"]
        if f["key"] != "price" and f.get("required") is not False
    ]
    required_fields += [
        f for f in compliance.get("required_fields", []) if f not in required_fields
    ]
    technical = doc.get("technical_criteria", [])
    checks = list(compliance.get("required_checks", []))
    checks += [PASS_CHECK_PREFIX + c["key"] for c in technical if "pass_mark" in c]
    field_rules = [dict(r) for r in compliance.get("field_rules", [])]
    field_rules += [r for r in _bound_rules(doc) if r not in field_rules]
    rules: dict[str, Any] = {
        "required_fields": required_fields,
        "required_documents": [
            d["key"]
            for d in doc.get("qualification_documents", [])
            if d.get("required") is not False
        ],
        "required_checks": checks,
        "field_rules": field_rules,
    }
    if bond is not None:
        rules["bid_bond"] = bond
    config: dict[str, Any] = {"format": SCORING_FORMAT}
    if refs:
        config["tender"] = dict(refs)
    config["direction"] = direction
    if ceiling is not None:
        config["ceiling_price"] = ceiling
    if reserve is not None:
        config["reserve_price"] = reserve
    config["min_bids"] = doc.get("min_bids", 3)
    config["price"] = price
    config["commercial_criteria"] = [
        {k: copy.deepcopy(v) for k, v in c.items() if k != "title"}
        for c in doc.get("commercial_criteria", [])
    ]
    config["technical_criteria"] = [
        {"key": c["key"], "max_points": c["max_points"], "step": c["step"]} for c in technical
    ]
    config["aggregation"] = doc.get("aggregation", "auto")
    if "technical_outlier_pct" in doc:
        config["technical_outlier_pct"] = doc["technical_outlier_pct"]
    if "abnormally_low" in doc and direction == "lowest_wins":
        config["abnormally_low"] = dict(doc["abnormally_low"])
    config["compliance_rules"] = {k: v for k, v in rules.items() if v != []}
    config["bids"] = []
    return config


def _amount(value: Any, name: str, errors: list[TemplateError], *, positive: bool) -> str | None:
    if value is None:
        return None
    text: str | None = None
    if isinstance(value, Decimal) and value.is_finite():
        text = fmt(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif is_decimal_string(value):
        text = value
    if text is None or not is_decimal_string(text) or text.startswith("-"):
        errors.append(
            TemplateError(
                f"tender_values.{name}",
                f'must be an amount (Decimal or a decimal string such as "1000.00"), not '
                f"{_describe(value)}",
            )
        )
        return None
    if positive and _dec(text) <= 0:
        errors.append(TemplateError(f"tender_values.{name}", "must be greater than 0"))
        return None
    return text


def to_scoring_config(
    doc: Mapping[str, Any], tender_values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The input part of an evaluation scoring file for one competition (lot) of a tender.

    ``tender_values`` holds the competition's own values: ``ceiling_price`` (lowest_wins),
    ``reserve_price`` (highest_wins), ``bid_bond``, ``budget`` (the base of the bid-bond
    limit; the ceiling or reserve price when absent) as ``Decimal`` or decimal strings, and
    ``tender``: free string references (id, lot, title) copied into the file.  The result has
    ``bids: []``; add the opened bids and pass it to ``evaluation.score``.  Raises
    ``TemplateValidationError`` when the template is invalid or a value is missing, of the
    wrong kind, or breaks a rule of the template (paths ``tender_values.<name>``).
    """
    errors = validate_template(doc)
    if errors:
        raise TemplateValidationError(errors)
    values = tender_values or {}
    problems: list[TemplateError] = []
    direction = doc["direction"]
    rules = doc.get("compliance", {})
    ceiling = _amount(values.get("ceiling_price"), "ceiling_price", problems, positive=True)
    reserve = _amount(values.get("reserve_price"), "reserve_price", problems, positive=True)
    bond = _amount(values.get("bid_bond"), "bid_bond", problems, positive=False)
    budget = _amount(values.get("budget"), "budget", problems, positive=True)
    if ceiling is not None and direction != "lowest_wins":
        problems.append(
            TemplateError(
                "tender_values.ceiling_price", "a ceiling price applies to lowest_wins only"
            )
        )
    if reserve is not None and direction != "highest_wins":
        problems.append(
            TemplateError(
                "tender_values.reserve_price", "a reserve price applies to highest_wins only"
            )
        )
    for name, given in (("ceiling_price", ceiling), ("reserve_price", reserve), ("bid_bond", bond)):
        flag = "bid_bond_required" if name == "bid_bond" else f"{name}_required"
        if (
            rules.get(flag)
            and given is None
            and f"tender_values.{name}" not in {p.path for p in problems}
        ):
            problems.append(
                TemplateError(
                    f"tender_values.{name}", f"is required by the template (compliance.{flag})"
                )
            )
    max_pct = rules.get(
        "bid_bond_max_pct", DEFAULT_BID_BOND_MAX_PCT if direction == "lowest_wins" else None
    )
    base = budget or ceiling or reserve
    if bond is not None and max_pct is not None and base is not None:
        with localcontext(Context(prec=120)):  # exact for 24-character decimals
            limit = _dec(base) * _dec(max_pct) / 100
        if _dec(bond) > limit:
            basis = "budget" if budget else "ceiling price" if ceiling else "reserve price"
            problems.append(
                TemplateError(
                    "tender_values.bid_bond",
                    f"{bond} is more than {max_pct} % of the {basis} {base} (at most "
                    f"{fmt(limit)}; compliance.bid_bond_max_pct)",
                )
            )
    refs = values.get("tender")
    if refs is not None and not (
        isinstance(refs, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in refs.items())
    ):
        problems.append(TemplateError("tender_values.tender", "must map names to strings"))
    if problems:
        raise TemplateValidationError(problems)
    return _scoring_config(doc, ceiling=ceiling, reserve=reserve, bond=bond, refs=refs)
