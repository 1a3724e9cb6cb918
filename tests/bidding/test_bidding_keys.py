"""Tender keys, custodian keys and the k-of-n key ceremony."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bidding import envelope as env
from bidding import keys
from bidding.errors import KeyMismatch, MalformedKey, ShareError, WrongPassphrase
from bidding.keys import InsufficientShares, KdfParams

FAST_KDF = KdfParams(iterations=1, lanes=1, memory_cost=8)  # tests only: cheap on purpose


def test_pem_round_trips(tmp_path: Path) -> None:
    tender = keys.generate_tender_key()
    loaded = keys.load_private_key_pem(keys.private_key_to_pem(tender))
    assert loaded.private_bytes_raw() == tender.private_bytes_raw()
    public = keys.load_public_key_pem(keys.public_key_to_pem(tender.public_key()))
    assert public.public_bytes_raw() == tender.public_key().public_bytes_raw()

    locked = keys.private_key_to_pem(tender, passphrase=b"secret words")
    assert b"ENCRYPTED" in locked
    assert keys.load_private_key_pem(locked, b"secret words").private_bytes_raw() == (
        tender.private_bytes_raw()
    )
    with pytest.raises(WrongPassphrase):
        keys.load_private_key_pem(locked, b"other words")
    with pytest.raises(WrongPassphrase):
        keys.load_private_key_pem(locked)

    platform = keys.generate_platform_key()
    platform_pem = keys.private_key_to_pem(platform)
    with pytest.raises(MalformedKey, match="X25519"):
        keys.load_private_key_pem(platform_pem)
    assert isinstance(
        keys.load_private_key_pem(platform_pem, kind=Ed25519PrivateKey), Ed25519PrivateKey
    )
    with pytest.raises(MalformedKey, match="Ed25519"):
        keys.load_public_key_pem(keys.public_key_to_pem(tender.public_key()), Ed25519PublicKey)
    with pytest.raises(MalformedKey):
        keys.load_private_key_pem(b"not a key")
    with pytest.raises(MalformedKey):
        keys.load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")

    private_path, public_path = keys.save_key_pair(tmp_path / "k", tender)
    assert private_path.name == "tender.key.pem" and public_path.name == "tender.pub.pem"
    assert private_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        keys.save_key_pair(tmp_path / "k", tender)
    assert len(keys.key_fingerprint(tender.public_key())) == 64


def test_wipe_zeroes_buffers() -> None:
    buffer = bytearray(b"secret key material")
    keys.wipe(buffer)
    assert buffer == bytearray(len(buffer))
    view_target = bytearray(b"abcdef")
    keys.wipe(memoryview(view_target)[2:4])
    assert view_target == bytearray(b"ab\x00\x00ef")


# --- custodian keys -----------------------------------------------------------------------


def test_custodian_key_lock_and_unlock() -> None:
    public, blob = keys.create_custodian_key("correct horse battery", FAST_KDF)
    assert blob["kdf"] | {"salt": None} == {
        "iterations": 1,
        "lanes": 1,
        "length": 32,
        "memory_cost": 8,
        "name": "argon2id",
        "salt": None,
    }
    assert "private" not in json.dumps(blob)
    private = keys.unlock_custodian_key(blob, "correct horse battery")
    assert private.public_key().public_bytes_raw() == public.public_bytes_raw()
    # JSON bytes work too; a decomposed Unicode passphrase equals its composed form (NFC).
    text_blob = json.dumps(blob).encode()
    assert keys.unlock_custodian_key(text_blob, "correct horse battery")
    _, accent_blob = keys.create_custodian_key("caf\u00e9", FAST_KDF)
    assert keys.unlock_custodian_key(accent_blob, "cafe\u0301")

    with pytest.raises(WrongPassphrase):
        keys.unlock_custodian_key(blob, "wrong horse battery")
    with pytest.raises(ValueError):
        keys.unlock_custodian_key(blob, "")


def test_custodian_key_blob_cannot_be_altered() -> None:
    _, blob = keys.create_custodian_key("pass phrase", FAST_KDF)
    other_public, _ = keys.create_custodian_key("pass phrase", FAST_KDF)
    import base64

    swaps = [
        {"public_key": base64.b64encode(other_public.public_bytes_raw()).decode()},
        {"kdf": {**blob["kdf"], "iterations": 2}},
        {"cipher": {**blob["cipher"], "nonce": base64.b64encode(bytes(12)).decode()}},
    ]
    for change in swaps:
        with pytest.raises(WrongPassphrase):
            keys.unlock_custodian_key({**blob, **change}, "pass phrase")
    bad = [
        {"format": "other"},
        {"kdf": {**blob["kdf"], "memory_cost": 10**9}},
        {"kdf": {**blob["kdf"], "name": "pbkdf2"}},
        {"ciphertext": "AAAA"},
    ]
    for change in bad:
        with pytest.raises(MalformedKey):
            keys.unlock_custodian_key({**blob, **change}, "pass phrase")
    with pytest.raises(MalformedKey):
        keys.unlock_custodian_key({k: v for k, v in blob.items() if k != "kdf"}, "pass phrase")
    with pytest.raises(MalformedKey):
        keys.unlock_custodian_key(b"{not json", "pass phrase")
    with pytest.raises(MalformedKey, match="exactly the fields"):
        keys.unlock_custodian_key({**blob, "note": "x"}, "pass phrase")


def test_default_kdf_parameters_are_recorded() -> None:
    public, blob = keys.create_custodian_key("a long custodian passphrase")
    assert (blob["kdf"]["iterations"], blob["kdf"]["lanes"], blob["kdf"]["memory_cost"]) == (
        3,
        4,
        65536,
    )
    private = keys.unlock_custodian_key(blob, "a long custodian passphrase")
    assert private.public_key().public_bytes_raw() == public.public_bytes_raw()


# --- ceremony -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def custodians() -> list[tuple[X25519PublicKey, dict, str]]:
    result = []
    for number in range(5):
        passphrase = f"custodian {number} passphrase"
        public, blob = keys.create_custodian_key(passphrase, FAST_KDF)
        result.append((public, blob, passphrase))
    return result


@pytest.fixture(scope="module")
def ceremony(custodians) -> keys.KeyCeremony:
    return keys.run_key_ceremony("T-2025-001", 3, [c[0] for c in custodians])


@pytest.fixture(scope="module")
def mnemonics(custodians, ceremony) -> list[str]:
    words = []
    for (_, blob, passphrase), share in zip(custodians, ceremony.shares, strict=True):
        private = keys.unlock_custodian_key(blob, passphrase)
        words.append(keys.decrypt_share(share, private))
    return words


def test_ceremony_shares(ceremony, custodians, mnemonics) -> None:
    assert len(ceremony.shares) == 5
    assert [s.index for s in ceremony.shares] == [1, 2, 3, 4, 5]
    assert {(s.threshold, s.count, s.tender) for s in ceremony.shares} == {(3, 5, "T-2025-001")}
    for share, (public, _, _) in zip(ceremony.shares, custodians, strict=True):
        assert share.custodian_public_key == public.public_bytes_raw()
        assert share.tender_public_key == ceremony.public_key.public_bytes_raw()
    # Paper backup: 33 SLIP-39 words for a 256-bit secret, all different shares.
    assert all(len(m.split()) == 33 for m in mnemonics)
    assert len(set(mnemonics)) == 5
    assert b"BEGIN PUBLIC KEY" in ceremony.public_key_pem


def test_any_k_shares_rebuild_and_open(ceremony, mnemonics, tender_key) -> None:
    parts = env.bid_parts({"price": "99.90"}, io.BytesIO(b"proposal"))
    sealed = io.BytesIO()
    env.seal(sealed, ceremony.public_key, "T-2025-001", "B-1", parts, chunk_size=64)
    for subset in itertools.combinations(mnemonics, 3):
        key = keys.rebuild_private_key(list(subset), ceremony.public_key)
        assert key.public_key().public_bytes_raw() == ceremony.public_key.public_bytes_raw()
    # More than k, shares as word lists, raw public key bytes, messy whitespace/case.
    key = keys.rebuild_private_key(
        [mnemonics[4].split(), "  " + mnemonics[0].upper() + " ", *mnemonics[1:3]],
        ceremony.public_key.public_bytes_raw(),
    )
    out: dict[str, io.BytesIO] = {}
    env.decrypt_envelope(
        io.BytesIO(sealed.getvalue()), key, lambda name: out.setdefault(name, io.BytesIO())
    )
    assert out["technical"].getvalue() == b"proposal"


def test_fewer_than_k_shares_fail(ceremony, mnemonics) -> None:
    for subset in itertools.combinations(mnemonics, 2):
        with pytest.raises(InsufficientShares, match="3 shares are needed"):
            keys.rebuild_private_key(list(subset), ceremony.public_key)
    with pytest.raises(InsufficientShares):
        keys.rebuild_private_key([], ceremony.public_key)
    with pytest.raises(ShareError, match="more than once"):
        keys.rebuild_private_key([mnemonics[0]] * 3, ceremony.public_key)


def test_wrong_shares_fail_loudly(ceremony, mnemonics, custodians) -> None:
    other = keys.run_key_ceremony("T-2025-001", 3, [c[0] for c in custodians])
    other_words = [
        keys.decrypt_share(share, keys.unlock_custodian_key(blob, passphrase))
        for share, (_, blob, passphrase) in zip(other.shares[:1], custodians, strict=False)
    ]
    with pytest.raises(ShareError, match="same tender key"):
        keys.rebuild_private_key([*mnemonics[:2], other_words[0]], ceremony.public_key)
    # A mistyped word is caught by the SLIP-39 checksum.
    words = mnemonics[0].split()
    words[10] = "academic" if words[10] != "academic" else "acid"
    with pytest.raises(ShareError, match="share 1"):
        keys.rebuild_private_key([" ".join(words), *mnemonics[1:3]], ceremony.public_key)
    with pytest.raises(ShareError) as caught:
        keys.rebuild_private_key(["not a share at all", *mnemonics[1:3]], ceremony.public_key)
    assert "not" not in str(caught.value).split("valid share")[1]  # no share words in messages
    # Valid shares of the right set, checked against another tender's public key.
    with pytest.raises(KeyMismatch):
        keys.rebuild_private_key(mnemonics[:3], other.public_key)


def test_wrong_sharing_passphrase_fails_loudly(custodians) -> None:
    tender = keys.generate_tender_key()
    privates = [keys.unlock_custodian_key(b, p) for _, b, p in custodians[:3]]
    shares = keys.split_tender_key(
        tender, "T-7", 2, [c[0] for c in custodians[:3]], passphrase=b"ceremony words"
    )
    words = [keys.decrypt_share(s, k) for s, k in zip(shares, privates, strict=True)]
    rebuilt = keys.rebuild_private_key(words[:2], tender.public_key(), passphrase=b"ceremony words")
    assert rebuilt.private_bytes_raw() == tender.private_bytes_raw()
    # SLIP-39 silently yields another secret; the public key check makes it loud.
    with pytest.raises(KeyMismatch, match="does not match"):
        keys.rebuild_private_key(words[:2], tender.public_key(), passphrase=b"other words")
    with pytest.raises(KeyMismatch):
        keys.rebuild_private_key(words[:2], tender.public_key())


def test_share_decryption_is_bound(ceremony, custodians) -> None:
    share = ceremony.shares[0]
    owner = keys.unlock_custodian_key(custodians[0][1], custodians[0][2])
    someone_else = keys.unlock_custodian_key(custodians[1][1], custodians[1][2])
    with pytest.raises(ShareError, match="another custodian"):
        keys.decrypt_share(share, someone_else)
    # JSON round trip, then each metadata field altered: the HPKE info no longer matches.
    as_json = json.loads(json.dumps(share.to_json()))
    assert keys.decrypt_share(as_json, owner) == keys.decrypt_share(share, owner)
    for change in ({"index": 2}, {"tender": "T-OTHER"}, {"threshold": 2}, {"count": 4}):
        with pytest.raises(ShareError):
            keys.decrypt_share({**as_json, **change}, owner)
    with pytest.raises(ShareError):
        keys.decrypt_share({**as_json, "format": "x"}, owner)
    with pytest.raises(ShareError):
        keys.decrypt_share({k: v for k, v in as_json.items() if k != "sealed"}, owner)
    with pytest.raises(ShareError, match="exactly the fields"):
        keys.decrypt_share({**as_json, "note": "x"}, owner)


def test_split_arguments(custodians) -> None:
    tender = keys.generate_tender_key()
    publics = [c[0] for c in custodians]
    with pytest.raises(ValueError, match="threshold of 1"):
        keys.split_tender_key(tender, "T-1", 1, publics)
    with pytest.raises(ValueError, match="threshold must be"):
        keys.split_tender_key(tender, "T-1", 6, publics)
    with pytest.raises(ValueError, match="distinct"):
        keys.split_tender_key(tender, "T-1", 2, [publics[0], publics[0]])
    with pytest.raises(ValueError, match="custodians"):
        keys.split_tender_key(tender, "T-1", 1, [])
    single = keys.split_tender_key(tender, "T-1", 1, publics[:1])
    owner = keys.unlock_custodian_key(custodians[0][1], custodians[0][2])
    words = keys.decrypt_share(single[0], owner)
    assert keys.rebuild_private_key([words], tender.public_key()).private_bytes_raw() == (
        tender.private_bytes_raw()
    )


@settings(max_examples=15, deadline=None, database=None)
@given(data=st.data(), count=st.integers(2, 7))
def test_k_of_n_property(data, count: int) -> None:
    threshold = data.draw(st.integers(2, count))
    privates = [X25519PrivateKey.generate() for _ in range(count)]
    tender = keys.generate_tender_key()
    shares = keys.split_tender_key(tender, "T-P", threshold, [p.public_key() for p in privates])
    words = [keys.decrypt_share(s, p) for s, p in zip(shares, privates, strict=True)]
    chosen = data.draw(st.permutations(words))
    rebuilt = keys.rebuild_private_key(chosen[:threshold], tender.public_key())
    assert rebuilt.private_bytes_raw() == tender.private_bytes_raw()
    with pytest.raises(InsufficientShares):
        keys.rebuild_private_key(chosen[: threshold - 1], tender.public_key())
