"""Malformed commercial parts as people read them: the opening record keeps each problem
as a code and parameters (bidding/commercial.py); pages translate them by code."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l

from app.opening.operations import record_of
from app.tenders.documents import blob_store
from app.tenders.models import Tender
from bidding.commercial import MESSAGES

PROBLEM_TEXTS = {
    "too_large": _l("the commercial part is %(size)s bytes; at most %(max)s are allowed"),
    "not_json": _l("the commercial part is not valid JSON: %(detail)s"),
    "not_object": _l("the commercial part is not a JSON object"),
    "too_many_fields": _l("the commercial part has %(count)s fields; at most %(max)s are allowed"),
    "unknown_field": _l("unknown field %(field)s"),
    "missing_field": _l("required field %(field)s is missing"),
    "not_money": _l(
        "field %(field)s must be an amount written as a string of digits with at most two "
        'decimals, such as "1234.50"'
    ),
    "not_integer": _l("field %(field)s must be a whole number (a JSON integer)"),
    "not_decimal": _l(
        'field %(field)s must be a decimal number written as a string, such as "12.5"'
    ),
    "not_text": _l("field %(field)s must be text"),
    "not_date": _l("field %(field)s must be a date written YYYY-MM-DD"),
    "not_choice": _l("field %(field)s must be one of: %(choices)s"),
    "number_too_long": _l(
        "field %(field)s has %(length)s characters; numbers have at most %(max)s"
    ),
    "text_too_long": _l("field %(field)s has %(length)s characters; at most %(max)s are allowed"),
    "control_characters": _l("field %(field)s contains control or direction-override characters"),
    "not_positive": _l("field %(field)s must be greater than 0"),
}


def problem_text(problem: Mapping[str, Any]) -> str:
    """One problem of the opening record in the page's language (English if unknown)."""
    code = str(problem.get("code", ""))
    params = {k: str(v) for k, v in (problem.get("params") or {}).items()}
    params["field"] = str(problem.get("field", ""))
    text = PROBLEM_TEXTS.get(code)
    try:
        if text is not None:
            return str(text) % params
        return MESSAGES[code].format(**params)
    except (KeyError, TypeError, ValueError):
        return code


def problems_text(problems: Sequence[Mapping[str, Any]]) -> str:
    """The problems of one part, translated, as the line's reason."""
    return str(
        _l(
            "malformed commercial part: %(problems)s",
            problems="; ".join(problem_text(p) for p in problems),
        )
    )


def line_problems(tender: Tender) -> dict[int, list[dict]]:
    """Opening sequence (bid id) → the problems of its malformed commercial part, from the
    published opening record (empty before the opening)."""
    document = record_of(tender)
    if document is None:
        return {}
    try:
        with blob_store().open(document.sha256) as stream:
            record = json.loads(stream.read())
    except (OSError, ValueError):
        return {}
    # The signed record keeps its body under "record" (records made before signing had none).
    body = record.get("record", record) if isinstance(record, dict) else {}
    return {
        line["sequence"]: line["problems"]
        for line in body.get("lines") or []
        if isinstance(line, dict) and line.get("problems")
    }
