"""Signed receipts: what the platform gives a bidder for each accepted envelope.

A receipt is the canonical JSON (sorted keys, no whitespace, ASCII) of::

    {"bidder": ..., "envelope_sha256": <64 hex>, "received_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ",
     "sequence": <int>, "size": <int>, "tender": ...}

signed with the platform's Ed25519 key over ``b"fairbid-receipt-v1\\x00" + canonical bytes``.
The receipt file a bidder keeps is the signed document::

    {"format": "fairbid-receipt-v1", "key_id": <hex SHA-256 of the raw public key>,
     "receipt": {...}, "signature": <base64 of the 64-byte signature>}

``received_at`` is the server time at which the envelope's last byte was stored (UTC,
microseconds); ``sequence`` orders the receipts of one tender.

A receipt for an envelope of a tender divided into lots is format ``fairbid-receipt-v2``:
version 1 plus one member, ``"lot"`` (the lot reference its envelope's header binds), signed
over ``b"fairbid-receipt-v2\\x00" + canonical bytes``.  A tender of one lot keeps version 1.

The same signing scheme, with another label, signs sealing records (:mod:`bidding.merkle`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import (
    CanonicalJSONError,
    b64decode,
    b64encode,
    canonical_json,
    check_identifier,
    is_hex_sha256,
    is_identifier,
    is_plain_int,
    parse_json,
)
from .errors import BiddingError, ReceiptError
from .keys import key_fingerprint

__all__ = [
    "RECEIPT_FORMAT",
    "RECEIPT_FORMAT_LOT",
    "Receipt",
    "dump_document",
    "format_timestamp",
    "make_receipt",
    "parse_timestamp",
    "read_receipt",
    "sign_receipt",
    "verify_receipt",
]

RECEIPT_FORMAT = "fairbid-receipt-v1"
RECEIPT_FORMAT_LOT = "fairbid-receipt-v2"  # version 1 plus the lot (a tender of several lots)
RECEIPT_FORMATS = (RECEIPT_FORMAT, RECEIPT_FORMAT_LOT)
_RECEIPT_FIELDS = {"bidder", "envelope_sha256", "received_at", "sequence", "size", "tender"}
_RECEIPT_FIELDS_LOT = _RECEIPT_FIELDS | {"lot"}
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``: ``2025-03-01T09:30:00.000000Z``.

    Naive datetimes are refused (the server clock must be explicit about UTC).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: object) -> datetime:
    """Parse a :func:`format_timestamp` string back to an aware UTC datetime (ValueError)."""
    if not isinstance(text, str) or not _TIMESTAMP_RE.fullmatch(text):
        raise ValueError("expected an ISO 8601 UTC timestamp like 2025-03-01T09:30:00.000000Z")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Receipt:
    """The signed content of a receipt (see the module docstring)."""

    tender: str
    bidder: str
    envelope_sha256: str
    size: int
    received_at: str
    sequence: int
    lot: str | None = None  # version 2 only: the lot the envelope is for

    @property
    def format(self) -> str:
        """The receipt's format: version 2 when it names a lot, else version 1."""
        return RECEIPT_FORMAT if self.lot is None else RECEIPT_FORMAT_LOT

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "bidder": self.bidder,
            "envelope_sha256": self.envelope_sha256,
            "received_at": self.received_at,
            "sequence": self.sequence,
            "size": self.size,
            "tender": self.tender,
        }
        if self.lot is not None:
            data["lot"] = self.lot
        return data

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def received_at_datetime(self) -> datetime:
        return parse_timestamp(self.received_at)

    @classmethod
    def from_json(cls, obj: object, format_name: str = RECEIPT_FORMAT) -> Receipt:
        """Validate and build a receipt from its JSON object, of version 1 (no lot) or, with
        ``format_name`` :data:`RECEIPT_FORMAT_LOT`, version 2 (a lot required).  Raises
        :class:`ReceiptError`."""
        if not isinstance(obj, Mapping):
            raise ReceiptError("malformed receipt: the receipt is not a JSON object")
        fields = _RECEIPT_FIELDS_LOT if format_name == RECEIPT_FORMAT_LOT else _RECEIPT_FIELDS
        missing = sorted(fields - set(obj))
        if missing:
            raise ReceiptError(f"malformed receipt: missing field(s) {', '.join(missing)}")
        extra = sorted(set(obj) - fields)
        if extra:
            raise ReceiptError(f"malformed receipt: unknown field(s) {', '.join(extra)}")
        for name in ("tender", "bidder"):
            if not is_identifier(obj[name]):
                raise ReceiptError(f"malformed receipt: invalid {name} id")
        if "lot" in fields and not is_identifier(obj["lot"]):
            raise ReceiptError("malformed receipt: invalid lot reference")
        if not is_hex_sha256(obj["envelope_sha256"]):
            raise ReceiptError("malformed receipt: envelope_sha256 must be 64 lowercase hex")
        if not is_plain_int(obj["size"]):
            raise ReceiptError("malformed receipt: size must be a non-negative integer")
        if not is_plain_int(obj["sequence"]):
            raise ReceiptError("malformed receipt: sequence must be a non-negative integer")
        try:
            parse_timestamp(obj["received_at"])
        except ValueError as exc:
            raise ReceiptError(f"malformed receipt: received_at: {exc}") from exc
        return cls(
            tender=obj["tender"],
            bidder=obj["bidder"],
            envelope_sha256=obj["envelope_sha256"],
            size=obj["size"],
            received_at=obj["received_at"],
            sequence=obj["sequence"],
            lot=obj["lot"] if "lot" in fields else None,
        )


def make_receipt(
    tender: str,
    bidder: str,
    envelope_sha256: str,
    size: int,
    received_at: datetime,
    sequence: int,
    lot: str | None = None,
) -> Receipt:
    """Build a receipt (validating every field); sign it with :func:`sign_receipt`.  ``lot``:
    the lot of a tender divided into lots (a version 2 receipt); None for one lot."""
    check_identifier(tender, "tender id")
    check_identifier(bidder, "bidder id")
    if lot is not None:
        check_identifier(lot, "lot reference")
    if not is_hex_sha256(envelope_sha256):
        raise ValueError("envelope_sha256 must be 64 lowercase hex digits")
    if not is_plain_int(size) or not is_plain_int(sequence):
        raise ValueError("size and sequence must be non-negative integers")
    return Receipt(
        tender, bidder, envelope_sha256, size, format_timestamp(received_at), sequence, lot
    )


# --- signed documents (shared with sealing records) ---------------------------------------


def sign_document(
    format_name: str, body_field: str, body: dict[str, Any], key: Ed25519PrivateKey
) -> dict[str, Any]:
    """Sign ``format_name NUL canonical_json(body)``; return the signed document."""
    message = format_name.encode("ascii") + b"\x00" + canonical_json(body)
    return {
        "format": format_name,
        "key_id": key_fingerprint(key.public_key()),
        body_field: body,
        "signature": b64encode(key.sign(message)),
    }


def load_document(
    document: Mapping[str, Any] | bytes | str,
    format_name: str | tuple[str, ...],
    body_field: str,
    what: str,
    error: type[BiddingError] = ReceiptError,
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Parse a signed document's envelope (strict JSON); return (document, body).
    ``format_name``: the format expected, or a tuple of the formats accepted (the caller reads
    which one from ``document["format"]``)."""
    formats = (format_name,) if isinstance(format_name, str) else format_name
    if isinstance(document, str):
        document = document.encode("utf-8")
    if isinstance(document, bytes):
        try:
            document = parse_json(document)
        except CanonicalJSONError as exc:
            raise error(f"malformed {what}: {exc}") from exc
    if not isinstance(document, Mapping):
        raise error(f"malformed {what}: not a JSON object")
    expected = {"format", "key_id", body_field, "signature"}
    if set(document) != expected:
        raise error(f"malformed {what}: expected exactly the fields {', '.join(sorted(expected))}")
    if not isinstance(document["format"], str) or document["format"] not in formats:
        raise error(f"malformed {what}: format is not {' or '.join(map(repr, formats))}")
    if not isinstance(document[body_field], Mapping):
        raise error(f"malformed {what}: {body_field} is not a JSON object")
    return document, document[body_field]


def check_signature(
    document: Mapping[str, Any],
    format_name: str,
    body: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    what: str,
    error: type[BiddingError] = ReceiptError,
) -> None:
    """Verify a signed document's signature with ``public_key``; raise ReceiptError."""
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError("the platform key must be an Ed25519 public key")
    try:
        signature = b64decode(document["signature"], 64)
    except ValueError as exc:
        raise error(f"malformed {what}: signature: {exc}") from exc
    fingerprint = key_fingerprint(public_key)
    if not isinstance(document["key_id"], str) or not hmac.compare_digest(
        document["key_id"], fingerprint
    ):
        raise error(
            f"{what} names signing key {str(document['key_id'])[:16]}..., not the given "
            f"platform key {fingerprint[:16]}...: signed by another key, or altered"
        )
    message = format_name.encode("ascii") + b"\x00" + canonical_json(dict(body))
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        raise error(
            f"invalid signature: the {what} was altered or not signed by this platform key"
        ) from None


def dump_document(document: Mapping[str, Any]) -> bytes:
    """The bytes to store or hand out for a signed document: canonical JSON plus newline."""
    return canonical_json(dict(document)) + b"\n"


def sign_receipt(receipt: Receipt, platform_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign a receipt; returns the JSON-ready signed document (see :func:`dump_document`)."""
    return sign_document(receipt.format, "receipt", receipt.to_json(), platform_key)


def read_receipt(document: Mapping[str, Any] | bytes | str) -> Receipt:
    """A receipt's content, of either version, WITHOUT checking its signature (anyone can
    forge such a receipt: for tools that say so).  Raises :class:`ReceiptError`."""
    doc, body = load_document(document, RECEIPT_FORMATS, "receipt", "receipt")
    return Receipt.from_json(body, doc["format"])


def verify_receipt(
    document: Mapping[str, Any] | bytes | str, platform_public_key: Ed25519PublicKey
) -> Receipt:
    """Verify a signed receipt; return its content.

    Raises :class:`ReceiptError` whose message says why: malformed JSON or fields, signed by
    another key, or an invalid signature (altered or forged).
    """
    doc, body = load_document(document, RECEIPT_FORMATS, "receipt", "receipt")
    receipt = Receipt.from_json(body, doc["format"])
    check_signature(doc, receipt.format, receipt.to_json(), platform_public_key, "receipt")
    return receipt
