"""RFC 6962 Merkle trees and the sealing record.

Hashes (RFC 6962 section 2.1, SHA-256)::

    MTH({})       = SHA-256()
    leaf hash     = SHA-256(0x00 || data)
    node hash     = SHA-256(0x01 || left || right)
    MTH(D[n])     = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n

Inclusion proofs are RFC 6962's audit paths, verified with RFC 9162 section 2.1.3.2.

Sealing record: at the deadline the platform publishes, signed with its Ed25519 key::

    {"format": "fairbid-sealing-record-v1", "key_id": <hex>, "signature": <base64>,
     "record": {"tender": ..., "sealed_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ",
                "size": <number of leaves>, "root": <64 hex>,
                "leaves": [<64 hex envelope SHA-256>, ...]}}

The leaves are the SHA-256 of every accepted envelope, in receipt ``sequence`` order; the
leaf data is the raw 32-byte digest (so leaf hash = SHA-256(0x00 || digest)).  The envelope
hash already covers tender and bidder (they are in its header).  The signature is over
``b"fairbid-sealing-record-v1\\x00" + canonical_json(record)``.  With the leaves public,
anyone recomputes the root and the inclusion proof of any receipt.

A tender divided into lots publishes one record over the envelopes of all its lots, format
``fairbid-sealing-record-v2``: the same fields, but each leaf is an object naming its lot::

    "leaves": [{"envelope_sha256": <64 hex>, "lot": <lot reference>}, ...]

and each leaf's data is the canonical JSON of that object (:func:`lot_leaf_data`), so the
root commits to which lot every envelope was accepted for.  The data of a version 2 leaf is
never 32 bytes long, so it is never the data of a version 1 leaf either.  A tender of one lot
keeps version 1.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import (
    canonical_json,
    check_identifier,
    is_hex_sha256,
    is_identifier,
    is_plain_int,
)
from .errors import InclusionError, SealingRecordError
from .receipts import (
    Receipt,
    check_signature,
    format_timestamp,
    load_document,
    parse_timestamp,
    sign_document,
)

__all__ = [
    "SEALING_RECORD_FORMAT",
    "SEALING_RECORD_FORMAT_LOTS",
    "SealingRecord",
    "inclusion_proof",
    "leaf_hash",
    "lot_leaf_data",
    "make_sealing_record",
    "merkle_root",
    "node_hash",
    "verify_inclusion",
    "verify_receipt_inclusion",
    "verify_sealing_record",
]

SEALING_RECORD_FORMAT = "fairbid-sealing-record-v1"
SEALING_RECORD_FORMAT_LOTS = "fairbid-sealing-record-v2"  # leaves carry their lot
_FORMATS = (SEALING_RECORD_FORMAT, SEALING_RECORD_FORMAT_LOTS)
_LEAF_FIELDS = {"envelope_sha256", "lot"}
_RECORD_FIELDS = {"leaves", "root", "sealed_at", "size", "tender"}


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def lot_leaf_data(lot: str, envelope_sha256: str) -> bytes:
    """The data of a version 2 leaf: ``canonical_json({"envelope_sha256": .., "lot": ..})``.

    Canonical JSON of an object of two identifier-safe strings reads back to exactly that
    object, so two different (lot, envelope) pairs never give the same leaf data."""
    check_identifier(lot, "lot reference")
    if not is_hex_sha256(envelope_sha256):
        raise ValueError("envelope_sha256 must be 64 lowercase hex digits")
    return canonical_json({"envelope_sha256": envelope_sha256, "lot": lot})


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of the leaf data ``leaves``."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _root_of_hashes([leaf_hash(leaf) for leaf in leaves])


def _path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*_path(index, hashes[:k]), _root_of_hashes(hashes[k:])]
    return [*_path(index - k, hashes[k:]), _root_of_hashes(hashes[:k])]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 audit path for leaf ``index`` of the tree over ``leaves``."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaves)} leaves")
    return _path(index, [leaf_hash(leaf) for leaf in leaves])


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf data ``leaf`` at ``index`` in a tree of ``tree_size``
    leaves with root ``root`` (RFC 9162 section 2.1.3.2)."""
    if not (0 <= index < tree_size) or any(len(item) != 32 for item in proof):
        return False
    fn, sn = index, tree_size - 1
    result = leaf_hash(leaf)
    for item in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(item, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, item)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(result, root)


# --- sealing record -----------------------------------------------------------------------


@dataclass(frozen=True)
class SealingRecord:
    """A verified sealing record: tender, time, leaves (hex envelope hashes) and root; in
    version 2 (a tender of several lots) also each leaf's lot, in ``lots``."""

    tender: str
    sealed_at: str
    leaves: tuple[str, ...]
    root: str
    lots: tuple[str, ...] | None = None  # version 2: the lot of each leaf, in leaf order

    def __post_init__(self) -> None:
        if self.lots is not None and len(self.lots) != len(self.leaves):
            raise ValueError("a sealing record needs one lot per leaf")

    @property
    def size(self) -> int:
        return len(self.leaves)

    @property
    def format(self) -> str:
        return SEALING_RECORD_FORMAT if self.lots is None else SEALING_RECORD_FORMAT_LOTS

    def lot_of(self, index: int) -> str | None:
        """The lot of leaf ``index`` (None in version 1)."""
        return None if self.lots is None else self.lots[index]

    def leaf_data(self) -> list[bytes]:
        """The data of every leaf, in order (what the Merkle tree is built over)."""
        if self.lots is None:
            return [bytes.fromhex(leaf) for leaf in self.leaves]
        return [lot_leaf_data(lot, leaf) for lot, leaf in zip(self.lots, self.leaves, strict=True)]

    def to_json(self) -> dict[str, Any]:
        leaves: list[Any] = list(self.leaves)
        if self.lots is not None:
            leaves = [
                {"envelope_sha256": leaf, "lot": lot}
                for lot, leaf in zip(self.lots, self.leaves, strict=True)
            ]
        return {
            "leaves": leaves,
            "root": self.root,
            "sealed_at": self.sealed_at,
            "size": self.size,
            "tender": self.tender,
        }

    def proof_for(self, envelope_sha256: str) -> tuple[int, list[bytes]]:
        """(index, audit path) of an envelope hash; :class:`InclusionError` if absent."""
        try:
            index = self.leaves.index(envelope_sha256)
        except ValueError:
            raise InclusionError(
                f"envelope {envelope_sha256} is not in the sealing record of tender "
                f"{self.tender} ({self.size} envelopes)"
            ) from None
        return index, inclusion_proof(self.leaf_data(), index)


def make_sealing_record(
    tender: str,
    envelope_hashes: Sequence[str],
    sealed_at: datetime,
    platform_key: Ed25519PrivateKey,
    lots: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build and sign the sealing record over the accepted envelopes' SHA-256 (hex), given in
    receipt sequence order.  ``lots``: for a tender divided into lots, the lot of each
    envelope (same order and length): a version 2 record whose leaves carry their lot; None
    for a tender of one lot (version 1).  Returns the JSON-ready signed document."""
    check_identifier(tender, "tender id")
    if not all(is_hex_sha256(item) for item in envelope_hashes):
        raise ValueError("envelope hashes must be 64 lowercase hex digits")
    if len(set(envelope_hashes)) != len(envelope_hashes):
        raise ValueError("duplicate envelope hash")
    if lots is not None:
        if len(lots) != len(envelope_hashes):
            raise ValueError("one lot per envelope hash")
        for lot in lots:
            check_identifier(lot, "lot reference")
    record = SealingRecord(
        tender=tender,
        sealed_at=format_timestamp(sealed_at),
        leaves=tuple(envelope_hashes),
        root="",
        lots=None if lots is None else tuple(lots),
    )
    record = replace(record, root=merkle_root(record.leaf_data()).hex())
    return sign_document(record.format, "record", record.to_json(), platform_key)


def _leaves_of(body: Mapping[str, Any], format_name: str) -> tuple[tuple[str, ...], tuple | None]:
    """(envelope hashes, lots or None) of a record body's leaves; SealingRecordError."""
    leaves = body["leaves"]
    if not isinstance(leaves, list):
        raise SealingRecordError("malformed sealing record: leaves must be a list")
    if format_name == SEALING_RECORD_FORMAT:
        if not all(is_hex_sha256(leaf) for leaf in leaves):
            raise SealingRecordError("malformed sealing record: leaves must be 64-hex hashes")
        return tuple(leaves), None
    for leaf in leaves:
        if (
            not isinstance(leaf, Mapping)
            or set(leaf) != _LEAF_FIELDS
            or not is_hex_sha256(leaf["envelope_sha256"])
            or not is_identifier(leaf["lot"])
        ):
            raise SealingRecordError(
                "malformed sealing record: each leaf must be an object of envelope_sha256 "
                "(64 hex) and lot (a lot reference)"
            )
    return (
        tuple(leaf["envelope_sha256"] for leaf in leaves),
        tuple(leaf["lot"] for leaf in leaves),
    )


def verify_sealing_record(
    document: Mapping[str, Any] | bytes | str,
    platform_public_key: Ed25519PublicKey | None,
) -> SealingRecord:
    """Validate a sealing record: fields, the root recomputed from the leaves, and, when a
    platform key is given, the signature.  Raises :class:`SealingRecordError`.

    Without a key only internal consistency is checked: anyone can forge such a record.
    """
    what = "sealing record"
    doc, body = load_document(document, _FORMATS, "record", what, SealingRecordError)
    if set(body) != _RECORD_FIELDS:
        raise SealingRecordError(
            f"malformed sealing record: expected the fields {', '.join(sorted(_RECORD_FIELDS))}"
        )
    if not is_identifier(body["tender"]):
        raise SealingRecordError("malformed sealing record: invalid tender id")
    try:
        parse_timestamp(body["sealed_at"])
    except ValueError as exc:
        raise SealingRecordError(f"malformed sealing record: sealed_at: {exc}") from exc
    leaves, lots = _leaves_of(body, doc["format"])
    if len(set(leaves)) != len(leaves):
        raise SealingRecordError("malformed sealing record: an envelope hash appears twice")
    if not is_plain_int(body["size"]) or body["size"] != len(leaves):
        raise SealingRecordError("sealing record: size does not match the number of leaves")
    if not is_hex_sha256(body["root"]):
        raise SealingRecordError("malformed sealing record: root must be 64 lowercase hex")
    record = SealingRecord(body["tender"], body["sealed_at"], leaves, body["root"], lots)
    if platform_public_key is not None:
        check_signature(
            doc,
            record.format,
            record.to_json(),
            platform_public_key,
            what,
            SealingRecordError,
        )
    computed = merkle_root(record.leaf_data()).hex()
    if not hmac.compare_digest(computed, record.root):
        raise SealingRecordError(
            f"sealing record: the root {record.root} is not the Merkle root of its leaves "
            f"({computed})"
        )
    return record


def verify_receipt_inclusion(receipt: Receipt, record: SealingRecord) -> int:
    """Check that a receipt's envelope is in the sealing record; return its leaf index.

    In a version 2 record the leaf must be for the lot the receipt names (a receipt naming no
    lot, or another lot, is refused).  Recomputes the audit path from the leaves and verifies
    it against the record's root.  Raises :class:`InclusionError`.
    """
    if receipt.tender != record.tender:
        raise InclusionError(
            f"the receipt is for tender {receipt.tender}, the sealing record for {record.tender}"
        )
    index, proof = record.proof_for(receipt.envelope_sha256)
    leaf_lot = record.lot_of(index)
    if receipt.lot != leaf_lot:
        if leaf_lot is None:
            raise InclusionError(
                f"the receipt is for lot {receipt.lot}, but the sealing record's leaves carry "
                "no lot (a tender of one lot)"
            )
        if receipt.lot is None:
            raise InclusionError(
                f"the receipt names no lot, but the sealing record seals this envelope for "
                f"lot {leaf_lot}"
            )
        raise InclusionError(
            f"the receipt is for lot {receipt.lot}, but the sealing record seals this "
            f"envelope for lot {leaf_lot}"
        )
    leaf = (
        bytes.fromhex(receipt.envelope_sha256)
        if receipt.lot is None
        else lot_leaf_data(receipt.lot, receipt.envelope_sha256)
    )
    if not verify_inclusion(
        leaf,
        index,
        record.size,
        proof,
        bytes.fromhex(record.root),
    ):
        raise InclusionError("the inclusion proof does not verify against the sealing root")
    return index
