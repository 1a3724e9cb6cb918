"""RFC 6962 Merkle tree, inclusion proofs and the sealing record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding import merkle, receipts
from bidding.errors import InclusionError, SealingRecordError

# Certificate Transparency's reference data (RFC 6962 test vectors).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PROOFS = [  # (index, tree size, audit path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def test_rfc6962_reference_roots_and_proofs() -> None:
    for size in range(9):
        assert merkle.merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    for index, size, path in CT_PROOFS:
        proof = merkle.inclusion_proof(CT_LEAVES[:size], index)
        assert [p.hex() for p in proof] == path
        root = bytes.fromhex(CT_ROOTS[size])
        assert merkle.verify_inclusion(CT_LEAVES[index], index, size, proof, root)


@settings(max_examples=60, deadline=None, database=None)
@given(leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=70), data=st.data())
def test_inclusion_proofs_for_random_trees(leaves: list[bytes], data) -> None:
    size = len(leaves)
    root = merkle.merkle_root(leaves)
    for index in range(size):
        proof = merkle.inclusion_proof(leaves, index)
        assert merkle.verify_inclusion(leaves[index], index, size, proof, root)

    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(leaves, index)
    leaf = leaves[index]
    # Wrong leaf, index, size, root, or any altered / missing / extra proof element.
    assert not merkle.verify_inclusion(leaf + b"x", index, size, proof, root)
    assert not merkle.verify_inclusion(leaf, index, size, proof, hashlib.sha256(root).digest())
    assert not merkle.verify_inclusion(leaf, size, size, proof, root)
    assert not merkle.verify_inclusion(leaf, -1, size, proof, root)
    # (A wrong tree size may still verify when the path has the same shape: RFC 9162's
    # algorithm relies on the size being authenticated with the root, as the signed
    # sealing record does.)
    other = data.draw(st.integers(0, size - 1))
    if other != index and len(set(leaves)) == size:
        assert not merkle.verify_inclusion(leaf, other, size, proof, root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        altered = list(proof)
        altered[position] = hashlib.sha256(altered[position]).digest()
        assert not merkle.verify_inclusion(leaf, index, size, altered, root)
        assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
        assert not merkle.verify_inclusion(leaf, index, size, [b"short", *proof[1:]], root)
    assert not merkle.verify_inclusion(leaf, index, size, [*proof, root], root)


def test_inclusion_proof_index_checks() -> None:
    with pytest.raises(IndexError):
        merkle.inclusion_proof([b"a"], 1)
    with pytest.raises(IndexError):
        merkle.inclusion_proof([], 0)
    assert merkle.inclusion_proof([b"a"], 0) == []
    assert merkle.verify_inclusion(b"a", 0, 1, [], merkle.merkle_root([b"a"]))


# --- sealing record -----------------------------------------------------------------------


def hashes(count: int) -> list[str]:
    return [hashlib.sha256(f"envelope {i}".encode()).hexdigest() for i in range(count)]


SEALED_AT = datetime(2025, 3, 10, 10, 0, tzinfo=UTC)


def signed_receipt(platform_key, envelope_sha256: str, tender: str = "T-1") -> receipts.Receipt:
    return receipts.make_receipt(tender, "B-1", envelope_sha256, 100, SEALED_AT, 1)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_sealing_record_and_receipt_inclusion(platform_key, count: int) -> None:
    envelope_hashes = hashes(count)
    document = merkle.make_sealing_record("T-1", envelope_hashes, SEALED_AT, platform_key)
    assert document["format"] == "fairbid-sealing-record-v1"
    assert set(document["record"]) == {"leaves", "root", "sealed_at", "size", "tender"}
    record = merkle.verify_sealing_record(document, platform_key.public_key())
    assert record.size == count and record.leaves == tuple(envelope_hashes)
    assert record.root == merkle.merkle_root([bytes.fromhex(h) for h in envelope_hashes]).hex()
    for index, digest in enumerate(envelope_hashes):
        assert (
            merkle.verify_receipt_inclusion(signed_receipt(platform_key, digest), record) == index
        )


def test_empty_sealing_record(platform_key) -> None:
    document = merkle.make_sealing_record("T-1", [], SEALED_AT, platform_key)
    record = merkle.verify_sealing_record(document, platform_key.public_key())
    assert record.root == hashlib.sha256(b"").hexdigest()
    with pytest.raises(InclusionError):
        merkle.verify_receipt_inclusion(signed_receipt(platform_key, hashes(1)[0]), record)


def test_sealing_record_failures(platform_key) -> None:
    envelope_hashes = hashes(5)
    document = merkle.make_sealing_record("T-1", envelope_hashes, SEALED_AT, platform_key)
    public = platform_key.public_key()
    record = merkle.verify_sealing_record(document, public)

    with pytest.raises(InclusionError, match="not in the sealing record"):
        merkle.verify_receipt_inclusion(signed_receipt(platform_key, hashes(6)[5]), record)
    with pytest.raises(InclusionError, match="tender"):
        merkle.verify_receipt_inclusion(
            signed_receipt(platform_key, envelope_hashes[0], tender="T-2"), record
        )

    body = document["record"]
    dropped = {**body, "leaves": body["leaves"][:4], "size": 4}
    with pytest.raises(SealingRecordError, match="invalid signature"):
        merkle.verify_sealing_record({**document, "record": dropped}, public)
    with pytest.raises(SealingRecordError, match="root"):  # unsigned check still catches it
        merkle.verify_sealing_record({**document, "record": dropped}, None)
    resigned = merkle.make_sealing_record(
        "T-1", envelope_hashes, SEALED_AT, Ed25519PrivateKey.generate()
    )
    with pytest.raises(SealingRecordError, match="names signing key"):
        merkle.verify_sealing_record(resigned, public)
    merkle.verify_sealing_record(resigned, None)  # consistent, just not ours
    for bad_body in (
        {**body, "size": 6},
        {**body, "leaves": ["xyz"]},
        {**body, "root": "00"},
        {**body, "sealed_at": "now"},
        {**body, "tender": "a b"},
        {k: v for k, v in body.items() if k != "root"},
    ):
        with pytest.raises(SealingRecordError):
            merkle.verify_sealing_record({**document, "record": bad_body}, None)
    with pytest.raises(SealingRecordError):
        merkle.verify_sealing_record(b"not json", None)
    with pytest.raises(ValueError, match="duplicate"):
        merkle.make_sealing_record("T-1", [envelope_hashes[0]] * 2, SEALED_AT, platform_key)
    with pytest.raises(ValueError):
        merkle.make_sealing_record("T-1", ["ABC"], SEALED_AT, platform_key)
