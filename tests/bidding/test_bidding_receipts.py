"""Signed receipts: canonical form, signing, and every kind of alteration refused."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding import receipts
from bidding.errors import ReceiptError

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def a_receipt(**overrides) -> receipts.Receipt:
    fields = {
        "tender": "T-2025-001",
        "bidder": "B-42",
        "envelope_sha256": hashlib.sha256(b"envelope").hexdigest(),
        "size": 123456,
        "received_at": datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
        "sequence": 7,
    }
    fields.update(overrides)
    return receipts.make_receipt(**fields)


def test_canonical_bytes_and_document_shape(platform_key) -> None:
    receipt = a_receipt()
    assert receipt.canonical_bytes() == (
        b'{"bidder":"B-42","envelope_sha256":"'
        + receipt.envelope_sha256.encode()
        + b'","received_at":"2025-03-01T09:30:00.123456Z","sequence":7,"size":123456,'
        b'"tender":"T-2025-001"}'
    )
    document = receipts.sign_receipt(receipt, platform_key)
    assert set(document) == {"format", "key_id", "receipt", "signature"}
    assert document["format"] == "fairbid-receipt-v1"
    # The signature is over the label, a NUL byte, and the canonical receipt.
    message = b"fairbid-receipt-v1\x00" + receipt.canonical_bytes()
    platform_key.public_key().verify(base64.b64decode(document["signature"]), message)
    dumped = receipts.dump_document(document)
    assert dumped.endswith(b"}\n") and b" " not in dumped
    assert receipts.verify_receipt(dumped, platform_key.public_key()) == receipt


def test_timestamps_are_utc() -> None:
    plus8 = timezone(timedelta(hours=8))
    receipt = a_receipt(received_at=datetime(2025, 3, 1, 17, 30, tzinfo=plus8))
    assert receipt.received_at == "2025-03-01T09:30:00.000000Z"
    assert receipt.received_at_datetime == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        a_receipt(received_at=datetime(2025, 3, 1, 9, 30))
    for bad in (
        "2025-03-01T09:30:00Z",
        "2025-03-01 09:30:00.000000Z",
        "2025-13-01T09:30:00.000000Z",
    ):
        with pytest.raises(ValueError):
            receipts.parse_timestamp(bad)


def test_make_receipt_validates() -> None:
    with pytest.raises(ValueError):
        a_receipt(envelope_sha256="ABC")
    with pytest.raises(ValueError):
        a_receipt(envelope_sha256="A" * 64)
    with pytest.raises(ValueError):
        a_receipt(size=-1)
    with pytest.raises(ValueError):
        a_receipt(sequence=True)
    with pytest.raises(ValueError):
        a_receipt(tender="T 1")


@settings(max_examples=80, deadline=None, database=None)
@given(
    tender=IDS,
    bidder=IDS,
    digest=st.binary(min_size=32, max_size=32),
    size=st.integers(0, 2**53 - 1),
    moment=MOMENTS,
    sequence=st.integers(0, 10**9),
    data=st.data(),
)
def test_any_alteration_is_refused(
    platform_key, tender, bidder, digest, size, moment, sequence, data
) -> None:
    receipt = receipts.make_receipt(tender, bidder, digest.hex(), size, moment, sequence)
    document = receipts.sign_receipt(receipt, platform_key)
    assert receipts.verify_receipt(document, platform_key.public_key()) == receipt

    field = data.draw(st.sampled_from(sorted(document["receipt"])))
    body = dict(document["receipt"])
    if field in ("size", "sequence"):
        # Stay within the range a receipt may carry (JSON-safe integers), so that the
        # signature, not the range check, is what refuses the change.
        delta = data.draw(st.integers(1, 10))
        value = body[field]
        body[field] = value + delta if value + delta <= 2**53 - 1 else value - delta
    elif field == "envelope_sha256":
        body[field] = hashlib.sha256(bytes.fromhex(body[field])).hexdigest()
    elif field == "received_at":
        later = receipt.received_at_datetime + timedelta(
            microseconds=data.draw(st.integers(1, 10**9))
        )
        body[field] = receipts.format_timestamp(later)
    else:
        body[field] = body[field] + "X"
    with pytest.raises(ReceiptError, match="invalid signature"):
        receipts.verify_receipt({**document, "receipt": body}, platform_key.public_key())


def test_forgery_and_malformed_documents_are_refused(platform_key) -> None:
    receipt = a_receipt()
    document = receipts.sign_receipt(receipt, platform_key)
    public = platform_key.public_key()
    forger = Ed25519PrivateKey.generate()

    forged = receipts.sign_receipt(receipt, forger)
    with pytest.raises(ReceiptError, match="names signing key"):
        receipts.verify_receipt(forged, public)
    # A forger who copies the platform's key id still fails on the signature.
    with pytest.raises(ReceiptError, match="invalid signature"):
        receipts.verify_receipt({**forged, "key_id": document["key_id"]}, public)

    signature = bytearray(base64.b64decode(document["signature"]))
    signature[5] ^= 1
    flipped = {**document, "signature": base64.b64encode(bytes(signature)).decode()}
    with pytest.raises(ReceiptError, match="invalid signature"):
        receipts.verify_receipt(flipped, public)

    cases = {
        "not JSON": b"{",
        "float": json.dumps({**document, "receipt": {**document["receipt"], "size": 1.5}}),
        "missing": {
            **document,
            "receipt": {k: v for k, v in document["receipt"].items() if k != "sequence"},
        },
        "unknown": {**document, "receipt": {**document["receipt"], "note": "x"}},
        "bool": {**document, "receipt": {**document["receipt"], "sequence": True}},
        "format": {**document, "format": "fairbid-receipt-v3"},
        "lot in v1": {**document, "receipt": {**document["receipt"], "lot": "1"}},
        "extra": {**document, "extra": 1},
        "signature": {**document, "signature": "not base64!"},
        "short signature": {**document, "signature": base64.b64encode(b"x" * 10).decode()},
        "list": b"[]",
        "duplicate": b'{"format":"a","format":"b"}',
    }
    for name, bad in cases.items():
        with pytest.raises(ReceiptError):
            receipts.verify_receipt(bad, public)
        assert name


def test_receipt_from_json_reasons() -> None:
    with pytest.raises(ReceiptError, match="missing field"):
        receipts.Receipt.from_json({})
    with pytest.raises(ReceiptError, match="not a JSON object"):
        receipts.Receipt.from_json([])
    good = a_receipt().to_json()
    with pytest.raises(ReceiptError, match="envelope_sha256"):
        receipts.Receipt.from_json({**good, "envelope_sha256": "x"})
    with pytest.raises(ReceiptError, match="received_at"):
        receipts.Receipt.from_json({**good, "received_at": "yesterday"})


def test_a_receipt_for_a_lot_is_version_2_and_binds_the_lot(platform_key) -> None:
    receipt = a_receipt(lot="L-2")
    assert receipt.lot == "L-2" and receipt.format == "fairbid-receipt-v2"
    assert b'"lot":"L-2"' in receipt.canonical_bytes()
    document = receipts.sign_receipt(receipt, platform_key)
    assert document["format"] == "fairbid-receipt-v2" and document["receipt"]["lot"] == "L-2"
    message = b"fairbid-receipt-v2\x00" + receipt.canonical_bytes()
    platform_key.public_key().verify(base64.b64decode(document["signature"]), message)
    public = platform_key.public_key()
    assert receipts.verify_receipt(receipts.dump_document(document), public) == receipt
    assert receipts.read_receipt(document) == receipt

    # Another lot, no lot, or the lot moved to a version 1 document: all refused.
    with pytest.raises(ReceiptError, match="invalid signature"):
        receipts.verify_receipt(
            {**document, "receipt": {**document["receipt"], "lot": "L-1"}}, public
        )
    without = {k: v for k, v in document["receipt"].items() if k != "lot"}
    with pytest.raises(ReceiptError, match="missing field"):
        receipts.verify_receipt({**document, "receipt": without}, public)
    with pytest.raises(ReceiptError, match="unknown field"):
        receipts.verify_receipt({**document, "format": "fairbid-receipt-v1"}, public)
    with pytest.raises(ReceiptError, match="invalid lot"):
        receipts.read_receipt({**document, "receipt": {**document["receipt"], "lot": "a b"}})
    with pytest.raises(ValueError, match="lot reference"):
        a_receipt(lot="")
    # A receipt without a lot stays version 1, byte for byte.
    assert receipts.sign_receipt(a_receipt(), platform_key)["format"] == "fairbid-receipt-v1"
