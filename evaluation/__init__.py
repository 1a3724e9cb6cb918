"""Fairbid's evaluation library: pure, no Flask, no SQLAlchemy.

The web app calls it with plain data and stores what it returns:

- ``score(doc)``: a scoring file (dict parsed from JSON) in, the same file with ``result`` out.
- ``verify(doc)``: recompute a scored file's result; the list of differences (empty: valid).
- ``load(text)`` / ``dumps(doc)``: parse+validate / canonical text.
- ``validate(doc)`` -> ``Tender`` and ``evaluate(tender)`` -> ``Evaluation`` for callers that
  want the dataclasses rather than JSON.
- ``screen_prices(prices)``: price-pattern red flags for supervisors.

All amounts and scores are ``decimal.Decimal`` inside and decimal strings in the file.
"""

from evaluation.engine import Evaluation, evaluate
from evaluation.messages import MESSAGES, Flag, Reason, Severity
from evaluation.model import Problem, ScoringFileError, Tender, tender_from_document
from evaluation.scoring_file import (
    FORMAT_HELP,
    Difference,
    dumps,
    input_sha256,
    load,
    parse_json,
    schema,
    score,
    score_text,
    validate,
    verify,
)
from evaluation.screens import screen_prices

__all__ = [
    "FORMAT_HELP",
    "MESSAGES",
    "Difference",
    "Evaluation",
    "Flag",
    "Problem",
    "Reason",
    "ScoringFileError",
    "Severity",
    "Tender",
    "dumps",
    "evaluate",
    "input_sha256",
    "load",
    "parse_json",
    "schema",
    "score",
    "score_text",
    "screen_prices",
    "tender_from_document",
    "validate",
    "verify",
]
