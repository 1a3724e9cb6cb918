"""The opening record: what the public opening found in each envelope, signed by the
platform like the sealing record (Ed25519 over ``format NUL canonical_json(record)``).

It names the sealing record it opened (its SHA-256), so with both files an outsider checks
offline that the opening record is the platform's, unaltered, and that every opened line is an
envelope the sealing record sealed: ``python -m bidding verify-opening OPENING.json
--platform-key KEY.pem --sealing-record SEALING.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import is_hex_sha256, is_identifier
from .errors import OpeningRecordError
from .merkle import SealingRecord, verify_sealing_record
from .receipts import check_signature, load_document, sign_document

OPENING_RECORD_FORMAT = "fairbid-opening-record"
_WHAT = "opening record"
_REQUIRED = {"tender", "reference", "opened_at", "sealing_record_sha256", "lines"}


def sign_opening_record(record: Mapping[str, Any], platform_key: Ed25519PrivateKey) -> dict:
    """The JSON-ready signed opening record (store it with `receipts.dump_document`)."""
    missing = _REQUIRED - set(record)
    if missing:
        raise ValueError(f"opening record without {', '.join(sorted(missing))}")
    return sign_document(OPENING_RECORD_FORMAT, "record", dict(record), platform_key)


def verify_opening_record(
    document: Mapping[str, Any] | bytes | str,
    platform_public_key: Ed25519PublicKey | None,
    sealing_record: bytes | None = None,
    sealing_public_key: Ed25519PublicKey | None = None,
) -> Mapping[str, Any]:
    """Check an opening record: its fields, its signature (when a key is given) and, with the
    sealing record's exact bytes, that it names that record and that every opened line's
    envelope is one of its leaves. Returns the record's body; raises OpeningRecordError."""
    doc, body = load_document(document, OPENING_RECORD_FORMAT, "record", _WHAT, OpeningRecordError)
    missing = _REQUIRED - set(body)
    if missing:
        raise OpeningRecordError(f"malformed opening record: no {', '.join(sorted(missing))}")
    if not is_identifier(body["tender"]):
        raise OpeningRecordError("malformed opening record: invalid tender id")
    lines = body["lines"]
    if not isinstance(lines, list) or not all(isinstance(line, Mapping) for line in lines):
        raise OpeningRecordError("malformed opening record: lines must be a list of objects")
    for number, line in enumerate(lines, 1):
        if not is_hex_sha256(line.get("envelope_sha256")):
            raise OpeningRecordError(f"malformed opening record: line {number} envelope_sha256")
    if platform_public_key is not None:
        check_signature(
            doc, OPENING_RECORD_FORMAT, body, platform_public_key, _WHAT, OpeningRecordError
        )
    if sealing_record is not None:
        _check_against_sealing(body, sealing_record, sealing_public_key or platform_public_key)
    return body


def _check_against_sealing(
    body: Mapping[str, Any], sealing_bytes: bytes, key: Ed25519PublicKey | None
) -> SealingRecord:
    digest = hashlib.sha256(sealing_bytes).hexdigest()
    if body["sealing_record_sha256"] != digest:
        raise OpeningRecordError(
            f"the opening record names sealing record {str(body['sealing_record_sha256'])[:16]}"
            f"..., not the given one ({digest[:16]}...)"
        )
    sealing = verify_sealing_record(sealing_bytes, key)
    if sealing.tender != body["tender"]:
        raise OpeningRecordError(
            f"the sealing record is of tender {sealing.tender}, the opening record of "
            f"{body['tender']}"
        )
    leaves = {leaf: sealing.lot_of(index) for index, leaf in enumerate(sealing.leaves)}
    for number, line in enumerate(body["lines"], 1):
        if line["envelope_sha256"] not in leaves:
            raise OpeningRecordError(
                f"line {number} opened envelope {line['envelope_sha256'][:16]}..., which the "
                "sealing record did not seal"
            )
        # A sealing record of lots (v2) says which lot each envelope was sealed for: the
        # opening line must name the same lot.
        sealed_lot = leaves[line["envelope_sha256"]]
        if sealed_lot is not None and line.get("lot") != sealed_lot:
            raise OpeningRecordError(
                f"line {number} is for lot {line.get('lot')}, but the sealing record sealed "
                f"its envelope for lot {sealed_lot}"
            )
    return sealing
