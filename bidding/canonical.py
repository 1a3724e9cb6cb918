"""Canonical JSON, identifiers and base64: the small shared encodings of the formats.

Canonical JSON here is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8, restricted to objects, arrays, strings, integers,
booleans and null (no floats).  The signed and hashed structures of this library (envelope
headers, receipts, sealing records) additionally contain only ASCII strings, so the same
bytes come out of JavaScript's ``JSON.stringify`` on an object built with sorted keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

# Tender and bidder identifiers: printable ASCII, safe in file names, JSON and HPKE info.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)

# Largest integer JavaScript represents exactly (2**53 - 1): sizes and sequences stay below.
MAX_SAFE_INTEGER = 2**53 - 1

_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


class CanonicalJSONError(ValueError):
    """Bytes are not the canonical JSON of a value (or not JSON at all)."""


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as canonical JSON bytes (sorted keys, no whitespace, UTF-8).

    Floats are refused: amounts travel as decimal strings.
    """
    _refuse_floats(value)
    return _ENCODER.encode(value).encode("utf-8")


_PLAIN_LEAVES = frozenset({str, int, bool, type(None)})


def _refuse_floats(value: Any) -> None:
    if type(value) in _PLAIN_LEAVES:  # the common case, without the ABC checks below
        return
    if isinstance(value, float):
        raise TypeError("floats are not allowed in canonical JSON; use a decimal string")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("object keys must be strings")
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CanonicalJSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_float_literal(text: str) -> Any:
    raise CanonicalJSONError("non-integer numbers are not allowed (use a decimal string)")


def _refuse_constant(text: str) -> Any:
    raise CanonicalJSONError(f"{text} is not allowed")


# Made once (``json.dumps``/``json.loads`` with options build a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_float=_refuse_float_literal,
    parse_constant=_refuse_constant,
)


def parse_json(data: bytes) -> Any:
    """Parse strict JSON: UTF-8, no duplicate keys, no floats, no NaN/Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CanonicalJSONError("not valid UTF-8") from exc
    try:
        return _DECODER.decode(text)
    except CanonicalJSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise CanonicalJSONError(f"not valid JSON: {exc}") from exc


def parse_canonical_json(data: bytes) -> Any:
    """Parse ``data`` and check that it is exactly the canonical serialisation of its value."""
    value = parse_json(data)
    if canonical_json(value) != data:
        raise CanonicalJSONError("not canonical JSON (sorted keys, no whitespace)")
    return value


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a valid tender or bidder identifier (see IDENTIFIER_PATTERN)."""
    return isinstance(value, str) and _IDENTIFIER_RE.fullmatch(value) is not None


def check_identifier(value: object, what: str) -> str:
    """Return ``value`` if it is a valid identifier, else raise ValueError naming ``what``."""
    if not is_identifier(value):
        raise ValueError(
            f"{what} must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter "
            f"or digit, got {value!r}"
        )
    return value  # type: ignore[return-value]


def is_hex_sha256(value: object) -> bool:
    """Whether ``value`` is 64 lowercase hexadecimal digits."""
    return isinstance(value, str) and _HEX64_RE.fullmatch(value) is not None


def is_plain_int(value: object, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> bool:
    """Whether ``value`` is an int (not a bool) within [minimum, maximum]."""
    return type(value) is int and minimum <= value <= maximum


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 section 4) with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, length: int | None = None) -> bytes:
    """Strict standard base64: only canonical encodings are accepted (re-encoding must match).

    Raises ValueError on anything else, or if the decoded length is not ``length``.
    """
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("invalid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data
