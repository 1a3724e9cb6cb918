"""The commercial part checked against the tender's form: its template's commercial fields.

A tender publishes its field specification (:meth:`CommercialSpec.to_json`, format
``fairbid-commercial-fields/1``).  The same rules run in three places: before sealing (the
browser form, ``python -m bidding seal --fields spec.json``) so an honest bidder cannot make
the mistake, and at the opening, where a part that breaks them is recorded as opened but
malformed and its bid is non-compliant (never a crash of the evaluation).

The rules: the part is at most :data:`MAX_COMMERCIAL_SIZE` bytes of JSON holding one object;
only the template's fields, each of its type (money: a decimal string of ASCII digits with
at most two decimals; integer: a JSON integer; decimal: a decimal string; text, choice,
date: strings); every required field present (the price always, and above 0); numbers at
most :data:`MAX_NUMBER_LENGTH` characters, the scoring file's limit; texts without control
characters and within their length.  Bounds (``min`` / ``max``) are compliance rules, not
form rules: the evaluation judges them, and only the pre-sealing check (``bounds=True``)
warns about them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from typing import Any

from .canonical import MAX_SAFE_INTEGER, CanonicalJSONError, parse_json

__all__ = [
    "MAX_COMMERCIAL_SIZE",
    "MAX_NUMBER_LENGTH",
    "MAX_TEXT_LENGTH",
    "OPEN_SPEC",
    "SPEC_FORMAT",
    "CheckedPart",
    "CommercialProblem",
    "CommercialSpec",
    "FieldSpec",
    "check_commercial",
    "check_commercial_part",
    "commercial_spec",
    "load_spec",
    "valid_fields",
]

SPEC_FORMAT = "fairbid-commercial-fields/1"
MAX_COMMERCIAL_SIZE = 64 * 1024
MAX_NUMBER_LENGTH = 24  # the scoring file's decimal strings (28-digit arithmetic stays exact)
MAX_TEXT_LENGTH = 10_000
MAX_FIELDS = 100
TYPES = ("money", "integer", "decimal", "text", "choice", "date")
NUMERIC_TYPES = ("money", "integer", "decimal")

# ASCII digits only (re.ASCII: no Arabic-Indic or full-width digits).
_MONEY_RE = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?", re.ASCII)
_DECIMAL_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?", re.ASCII)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", re.ASCII)
# C0 and C1 controls (tab, line feed and carriage return allowed), bidi overrides and NUL.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

MESSAGES: dict[str, str] = {
    "too_large": "the commercial part is {size} bytes; at most {max} are allowed",
    "not_json": "the commercial part is not valid JSON: {detail}",
    "not_object": "the commercial part is not a JSON object",
    "too_many_fields": "the commercial part has {count} fields; at most {max} are allowed",
    "unknown_field": "unknown field {field}",
    "missing_field": "required field {field} is missing",
    "not_money": (
        "field {field} must be an amount written as a string of digits with at most two "
        'decimals, such as "1234.50"'
    ),
    "not_integer": "field {field} must be a whole number (a JSON integer)",
    "not_decimal": 'field {field} must be a decimal number written as a string, such as "12.5"',
    "not_text": "field {field} must be text",
    "not_date": "field {field} must be a date written YYYY-MM-DD",
    "not_choice": "field {field} must be one of: {choices}",
    "number_too_long": "field {field} has {length} characters; numbers have at most {max}",
    "text_too_long": "field {field} has {length} characters; at most {max} are allowed",
    "control_characters": "field {field} contains control or direction-override characters",
    "not_positive": "field {field} must be greater than 0",
    "below_min": "field {field} is {value}; it must be at least {min}",
    "above_max": "field {field} is {value}; it must be at most {max}",
}


@dataclass(frozen=True)
class CommercialProblem:
    """One thing wrong with a commercial part: a code, the field ("" for the whole part,
    shown quoted and escaped), and the message's parameters (strings)."""

    code: str
    field: str = ""
    params: Mapping[str, str] = dataclass_field(default_factory=dict)

    @property
    def message(self) -> str:
        return MESSAGES[self.code].format(field=self.field, **self.params)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "params": dict(self.params)}

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class FieldSpec:
    """One commercial field of the tender's form."""

    key: str
    type: str
    required: bool = True
    min: str | None = None
    max: str | None = None
    choices: tuple[str, ...] = ()
    max_length: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "type": self.type, "required": self.required}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices:
            out["choices"] = list(self.choices)
        if self.max_length is not None:
            out["max_length"] = self.max_length
        return out


@dataclass(frozen=True)
class CommercialSpec:
    """The tender's commercial fields (the price always among them, required).

    An ``open`` specification (used only when a tender's template cannot be read) accepts
    other fields too, as long as they have plain names and plain values."""

    fields: tuple[FieldSpec, ...]
    open: bool = False

    def field(self, key: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "max_size": MAX_COMMERCIAL_SIZE,
            "max_number_length": MAX_NUMBER_LENGTH,
            "fields": [f.to_json() for f in self.fields],
            "open": self.open,
        }


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def commercial_spec(fields: Sequence[Mapping[str, Any]]) -> CommercialSpec:
    """The specification from a template's ``commercial_fields`` (or a published spec's
    ``fields``).  Raises ValueError on an item it cannot use."""
    specs: list[FieldSpec] = []
    seen: set[str] = set()
    for item in fields:
        if not isinstance(item, Mapping):
            raise ValueError("each field must be an object")
        key, kind = item.get("key"), item.get("type")
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key in seen:
            raise ValueError(f"invalid or duplicate field key {key!r}")
        if kind not in TYPES:
            raise ValueError(f"field {key!r}: unknown type {kind!r}")
        max_length = item.get("max_length")
        if max_length is not None and (type(max_length) is not int or max_length < 1):
            raise ValueError(f"field {key!r}: max_length must be a positive integer")
        choices = item.get("choices") or ()
        if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"field {key!r}: choices must be strings")
        seen.add(key)
        specs.append(
            FieldSpec(
                key=key,
                type=kind,
                required=key == "price" or item.get("required", True) is not False,
                min=_text_or_none(item.get("min")),
                max=_text_or_none(item.get("max")),
                choices=tuple(choices),
                max_length=min(max_length or MAX_TEXT_LENGTH, MAX_TEXT_LENGTH)
                if kind == "text"
                else None,
            )
        )
    if "price" not in seen:
        specs.insert(0, FieldSpec("price", "money"))
    elif next(f for f in specs if f.key == "price").type != "money":
        raise ValueError("the price must be a money field")
    return CommercialSpec(tuple(specs))


def load_spec(data: bytes | str | Mapping[str, Any]) -> CommercialSpec:
    """A published specification (JSON text or its object).  Raises ValueError."""
    obj: Any = data
    if isinstance(data, bytes | str):
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(obj, Mapping) or obj.get("format") != SPEC_FORMAT:
        raise ValueError(f"not a field specification (format {SPEC_FORMAT!r})")
    if not isinstance(obj.get("fields"), list):
        raise ValueError("the specification has no list of fields")
    spec = commercial_spec(obj["fields"])
    return CommercialSpec(spec.fields, open=obj.get("open") is True)


OPEN_SPEC = CommercialSpec((FieldSpec("price", "money"),), open=True)


def _open_value_ok(key: Any, value: Any) -> bool:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        return False
    if isinstance(value, bool):
        return True
    if type(value) is int:
        return abs(value) <= MAX_SAFE_INTEGER
    return (
        isinstance(value, str)
        and len(value) <= MAX_TEXT_LENGTH
        and _CONTROL_RE.search(value) is None
    )


def _shown(key: str) -> str:
    """A field name as messages show it: quoted, escaped, short (never raw control bytes)."""
    text = json.dumps(key, ensure_ascii=True)
    return text if len(text) <= 60 else text[:56] + '..."'


def _value_problem(spec: FieldSpec, value: Any, bounds: bool) -> CommercialProblem | None:
    name = _shown(spec.key)

    def problem(code: str, **params: str) -> CommercialProblem:
        return CommercialProblem(code, name, params)

    kind = spec.type
    if kind == "integer":
        if type(value) is not int:
            return problem("not_integer")
        if abs(value) > MAX_SAFE_INTEGER:
            return problem("number_too_long", length=str(len(str(value))), max="16")
        number = Decimal(value)
    elif kind in ("money", "decimal"):
        if not isinstance(value, str):
            return problem("not_money" if kind == "money" else "not_decimal")
        if len(value) > MAX_NUMBER_LENGTH:
            return problem("number_too_long", length=str(len(value)), max=str(MAX_NUMBER_LENGTH))
        pattern = _MONEY_RE if kind == "money" else _DECIMAL_RE
        if not pattern.fullmatch(value):
            return problem("not_money" if kind == "money" else "not_decimal")
        number = Decimal(value)
        if spec.key == "price" and number <= 0:
            return problem("not_positive")
    else:
        if not isinstance(value, str):
            return problem("not_date" if kind == "date" else "not_text")
        limit = spec.max_length or MAX_TEXT_LENGTH
        if len(value) > limit:
            return problem("text_too_long", length=str(len(value)), max=str(limit))
        if _CONTROL_RE.search(value):
            return problem("control_characters")
        if kind == "date":
            try:
                if not _DATE_RE.fullmatch(value):
                    raise ValueError(value)
                dt.date.fromisoformat(value)
            except ValueError:
                return problem("not_date")
        if kind == "choice" and value not in spec.choices:
            return problem("not_choice", choices=", ".join(spec.choices))
        return None
    if bounds and spec.min is not None and number < Decimal(spec.min):
        return problem("below_min", value=str(value), min=spec.min)
    if bounds and spec.max is not None and number > Decimal(spec.max):
        return problem("above_max", value=str(value), max=spec.max)
    return None


def check_commercial(
    spec: CommercialSpec, fields: Any, *, bounds: bool = False
) -> list[CommercialProblem]:
    """Every problem of the commercial fields against the specification (none: valid).

    ``bounds`` also reports values outside a field's ``min`` / ``max`` (before sealing; at
    the opening those are left to the evaluation's compliance rules)."""
    if not isinstance(fields, Mapping):
        return [CommercialProblem("not_object")]
    problems: list[CommercialProblem] = []
    if len(fields) > MAX_FIELDS:
        problems.append(
            CommercialProblem("too_many_fields", "", {"count": str(len(fields)), "max": "100"})
        )
    known = {f.key for f in spec.fields}
    for key in fields:
        if key in known:
            continue
        if spec.open and _open_value_ok(key, fields[key]):
            continue
        if key not in known:
            problems.append(CommercialProblem("unknown_field", _shown(str(key))))
            if len(problems) >= 20:
                break
    for item in spec.fields:
        if item.key not in fields:
            if item.required:
                problems.append(CommercialProblem("missing_field", _shown(item.key)))
            continue
        found = _value_problem(item, fields[item.key], bounds)
        if found is not None:
            problems.append(found)
    return problems


def valid_fields(spec: CommercialSpec, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that are known and of the right form (what the evaluation may use)."""
    known = {
        item.key: fields[item.key]
        for item in spec.fields
        if item.key in fields and _value_problem(item, fields[item.key], False) is None
    }
    if spec.open:
        specified = {item.key for item in spec.fields}
        known.update(
            (key, value)
            for key, value in fields.items()
            if key not in specified and _open_value_ok(key, value)
        )
    return known


@dataclass(frozen=True)
class CheckedPart:
    """A commercial part as the opening reads it: the usable fields and the problems."""

    fields: dict[str, Any]
    problems: tuple[CommercialProblem, ...]

    @property
    def price(self) -> str | None:
        value = self.fields.get("price")
        return value if isinstance(value, str) else None

    @property
    def reason(self) -> str:
        """The problems in one English sentence ("" when there is none)."""
        if not self.problems:
            return ""
        return "malformed commercial part: " + "; ".join(p.message for p in self.problems)


def check_commercial_part(
    spec: CommercialSpec, data: bytes, *, size: int | None = None
) -> CheckedPart:
    """Read a decrypted ``commercial`` part: size, strict JSON, then the fields.  ``size``
    is the part's full size when ``data`` holds only its beginning."""
    size = len(data) if size is None else size
    if size > MAX_COMMERCIAL_SIZE:
        problem = CommercialProblem(
            "too_large", "", {"size": str(size), "max": str(MAX_COMMERCIAL_SIZE)}
        )
        return CheckedPart({}, (problem,))
    try:
        value = parse_json(data)
    except CanonicalJSONError as exc:
        detail = _CONTROL_RE.sub("?", str(exc).encode("ascii", "backslashreplace").decode())[:200]
        return CheckedPart({}, (CommercialProblem("not_json", "", {"detail": detail}),))
    if not isinstance(value, dict):
        return CheckedPart({}, (CommercialProblem("not_object"),))
    return CheckedPart(valid_fields(spec, value), tuple(check_commercial(spec, value)))
