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
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import check_identifier, is_hex_sha256, is_identifier, is_plain_int
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
    "SealingRecord",
    "inclusion_proof",
    "leaf_hash",
    "make_sealing_record",
    "merkle_root",
    "node_hash",
    "verify_inclusion",
    "verify_receipt_inclusion",
    "verify_sealing_record",
]

SEALING_RECORD_FORMAT = "fairbid-sealing-record-v1"
_RECORD_FIELDS = {"leaves", "root", "sealed_at", "size", "tender"}


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


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
    """A verified sealing record: tender, time, leaves (hex envelope hashes) and root."""

    tender: str
    sealed_at: str
    leaves: tuple[str, ...]
    root: str

    @property
    def size(self) -> int:
        return len(self.leaves)

    def to_json(self) -> dict[str, Any]:
        return {
            "leaves": list(self.leaves),
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
        return index, inclusion_proof([bytes.fromhex(leaf) for leaf in self.leaves], index)


def make_sealing_record(
    tender: str,
    envelope_hashes: Sequence[str],
    sealed_at: datetime,
    platform_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """Build and sign the sealing record over the accepted envelopes' SHA-256 (hex), given in
    receipt sequence order.  Returns the JSON-ready signed document."""
    check_identifier(tender, "tender id")
    if not all(is_hex_sha256(item) for item in envelope_hashes):
        raise ValueError("envelope hashes must be 64 lowercase hex digits")
    if len(set(envelope_hashes)) != len(envelope_hashes):
        raise ValueError("duplicate envelope hash")
    record = SealingRecord(
        tender=tender,
        sealed_at=format_timestamp(sealed_at),
        leaves=tuple(envelope_hashes),
        root=merkle_root([bytes.fromhex(item) for item in envelope_hashes]).hex(),
    )
    return sign_document(SEALING_RECORD_FORMAT, "record", record.to_json(), platform_key)


def verify_sealing_record(
    document: Mapping[str, Any] | bytes | str,
    platform_public_key: Ed25519PublicKey | None,
) -> SealingRecord:
    """Validate a sealing record: fields, the root recomputed from the leaves, and, when a
    platform key is given, the signature.  Raises :class:`SealingRecordError`.

    Without a key only internal consistency is checked: anyone can forge such a record.
    """
    what = "sealing record"
    doc, body = load_document(document, SEALING_RECORD_FORMAT, "record", what, SealingRecordError)
    if set(body) != _RECORD_FIELDS:
        raise SealingRecordError(
            f"malformed sealing record: expected the fields {', '.join(sorted(_RECORD_FIELDS))}"
        )
    leaves = body["leaves"]
    if not is_identifier(body["tender"]):
        raise SealingRecordError("malformed sealing record: invalid tender id")
    try:
        parse_timestamp(body["sealed_at"])
    except ValueError as exc:
        raise SealingRecordError(f"malformed sealing record: sealed_at: {exc}") from exc
    if not isinstance(leaves, list) or not all(is_hex_sha256(leaf) for leaf in leaves):
        raise SealingRecordError("malformed sealing record: leaves must be 64-hex hashes")
    if not is_plain_int(body["size"]) or body["size"] != len(leaves):
        raise SealingRecordError("sealing record: size does not match the number of leaves")
    if not is_hex_sha256(body["root"]):
        raise SealingRecordError("malformed sealing record: root must be 64 lowercase hex")
    record = SealingRecord(body["tender"], body["sealed_at"], tuple(leaves), body["root"])
    if platform_public_key is not None:
        check_signature(
            doc,
            SEALING_RECORD_FORMAT,
            record.to_json(),
            platform_public_key,
            what,
            SealingRecordError,
        )
    computed = merkle_root([bytes.fromhex(leaf) for leaf in leaves]).hex()
    if not hmac.compare_digest(computed, record.root):
        raise SealingRecordError(
            f"sealing record: the root {record.root} is not the Merkle root of its leaves "
            f"({computed})"
        )
    return record


def verify_receipt_inclusion(receipt: Receipt, record: SealingRecord) -> int:
    """Check that a receipt's envelope is in the sealing record; return its leaf index.

    Recomputes the audit path from the leaves and verifies it against the record's root.
    Raises :class:`InclusionError`.
    """
    if receipt.tender != record.tender:
        raise InclusionError(
            f"the receipt is for tender {receipt.tender}, the sealing record for {record.tender}"
        )
    index, proof = record.proof_for(receipt.envelope_sha256)
    if not verify_inclusion(
        bytes.fromhex(receipt.envelope_sha256),
        index,
        record.size,
        proof,
        bytes.fromhex(record.root),
    ):
        raise InclusionError("the inclusion proof does not verify against the sealing root")
    return index
