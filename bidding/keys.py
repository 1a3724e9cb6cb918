"""Tender keys, custodian keys and the k-of-n key ceremony.

* The tender key pair is X25519 (the HPKE KEM of the envelopes).  At publication
  :func:`run_key_ceremony` generates it, splits the 32-byte private key k-of-n with SLIP-39
  (``shamir-mnemonic``), seals each share to its custodian's own X25519 public key with HPKE,
  and returns only the public key and the sealed shares: the private key exists nowhere
  until k custodians act.
* A custodian's private key is stored only locked under a passphrase: Argon2id (parameters
  recorded in the blob) derives an AES-256-GCM key that encrypts it.
* A custodian's share, once unsealed with :func:`decrypt_share`, is a SLIP-39 mnemonic: the
  same words are the custodian's paper backup.
* :func:`rebuild_private_key` combines k shares and ALWAYS checks the result against the
  published tender public key: SLIP-39 silently yields a different secret for a wrong
  sharing passphrase, so that check is what makes a wrong share or passphrase fail loudly.

About wiping: :func:`wipe` zeroes a ``bytearray`` in place and this module keeps key bytes in
bytearrays where it can.  Python cannot guarantee that secrets are gone from memory: ``bytes``
objects are immutable, the interpreter and OpenSSL make copies, and freed memory is not
cleared.  Wiping here is best effort only; the real protections are short key lifetimes and
keeping the rebuilt key in one process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from shamir_mnemonic import MnemonicError, combine_mnemonics, generate_mnemonics
from shamir_mnemonic.share import Share

from .canonical import (
    CanonicalJSONError,
    b64decode,
    b64encode,
    canonical_json,
    check_identifier,
    is_identifier,
    is_plain_int,
    parse_json,
)
from .errors import KeyMismatch, MalformedKey, ShareError, WrongPassphrase

__all__ = [
    "DEFAULT_KDF",
    "EncryptedShare",
    "InsufficientShares",
    "KdfParams",
    "KeyCeremony",
    "create_custodian_key",
    "decrypt_share",
    "generate_platform_key",
    "generate_tender_key",
    "key_fingerprint",
    "load_private_key_pem",
    "load_public_key_pem",
    "lock_custodian_key",
    "private_key_to_pem",
    "public_key_to_pem",
    "rebuild_private_key",
    "run_key_ceremony",
    "save_key_pair",
    "split_tender_key",
    "unlock_custodian_key",
    "wipe",
]

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SHARE_FORMAT = "fairbid-key-share"
CUSTODIAN_KEY_FORMAT = "fairbid-custodian-key"
SHARE_INFO_LABEL = b"fairbid-key-share-v1\x00"
MAX_CUSTODIANS = 16  # SLIP-39 allows at most 16 shares in a group

PrivateKey = X25519PrivateKey | Ed25519PrivateKey
PublicKey = X25519PublicKey | Ed25519PublicKey


class InsufficientShares(ShareError):
    """Fewer shares than the threshold were given."""


def wipe(buffer: bytearray | memoryview) -> None:
    """Best effort: overwrite a mutable buffer with zeros.

    Python cannot guarantee memory wiping: immutable ``bytes`` copies, interpreter and
    OpenSSL internals and freed memory are out of reach.  Use it, but do not rely on it.
    """
    view = memoryview(buffer).cast("B")
    view[:] = bytes(len(view))


# --- key generation and PEM ---------------------------------------------------------------


def generate_tender_key() -> X25519PrivateKey:
    """A fresh tender key pair (X25519, for HPKE).  ``.public_key()`` gives the public half."""
    return X25519PrivateKey.generate()


def generate_platform_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key pair for signing receipts and sealing records."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase if one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_to_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key_pem(
    data: bytes, passphrase: bytes | None = None, kind: type[PrivateKey] = X25519PrivateKey
) -> Any:
    """Load a PKCS#8 PEM private key of type ``kind`` (default X25519, the tender key).

    Raises :class:`WrongPassphrase` or :class:`MalformedKey`.
    """
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # encrypted without passphrase, or passphrase for a clear key
        raise WrongPassphrase(f"private key: {exc}") from exc
    except ValueError as exc:
        message = str(exc).lower()
        if "password" in message or "decrypt" in message:
            raise WrongPassphrase("the passphrase does not decrypt this private key") from exc
        raise MalformedKey("not a PEM private key") from exc
    except UnsupportedAlgorithm as exc:
        raise MalformedKey("unsupported private key type") from exc
    if not isinstance(key, kind):
        raise MalformedKey(f"expected an {_kind_name(kind)} private key")
    return key


def load_public_key_pem(data: bytes, kind: type[PublicKey] = X25519PublicKey) -> Any:
    """Load a SubjectPublicKeyInfo PEM public key of type ``kind`` (default X25519)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedKey("not a PEM public key") from exc
    if not isinstance(key, kind):
        raise MalformedKey(f"expected an {_kind_name(kind)} public key")
    return key


def _kind_name(kind: type) -> str:
    return "X25519" if kind.__name__.startswith("X25519") else "Ed25519"


def save_key_pair(
    directory: str | os.PathLike[str], key: PrivateKey, name: str = "tender"
) -> tuple[Path, Path]:
    """Write ``NAME.key.pem`` (mode 0600, unencrypted) and ``NAME.pub.pem`` into ``directory``.

    Refuses to overwrite existing files (FileExistsError).  Meant for test keys and the
    platform's signing key; tender private keys are normally never written anywhere.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    private_path = target / f"{name}.key.pem"
    public_path = target / f"{name}.pub.pem"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with open(fd, "wb") as handle:
        handle.write(public_key_to_pem(key.public_key()))
    return private_path, public_path


def key_fingerprint(key: PublicKey | bytes) -> str:
    """Hex SHA-256 of the raw public key bytes: a short, stable key identifier."""
    raw = key if isinstance(key, bytes) else key.public_bytes_raw()
    return hashlib.sha256(raw).hexdigest()


def _public_raw(key: X25519PublicKey | X25519PrivateKey | bytes) -> bytes:
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    if isinstance(key, X25519PublicKey):
        return key.public_bytes_raw()
    if isinstance(key, bytes) and len(key) == 32:
        return key
    raise TypeError("expected an X25519 public key or its 32 raw bytes")


# --- custodian keys -----------------------------------------------------------------------


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters (RFC 9106): passes, lanes, memory in KiB."""

    iterations: int = 3
    lanes: int = 4
    memory_cost: int = 64 * 1024

    def check(self) -> None:
        # Upper bounds keep a forged blob from making the server burn memory or time.
        if not (
            is_plain_int(self.iterations, 1, 64)
            and is_plain_int(self.lanes, 1, 64)
            and is_plain_int(self.memory_cost, 8 * self.lanes, 4 * 1024 * 1024)
        ):
            raise MalformedKey("custodian key: Argon2id parameters out of range")


# RFC 9106's second recommended option: t=3, p=4, m=64 MiB.
DEFAULT_KDF = KdfParams()


def _passphrase_bytes(passphrase: str | bytes) -> bytearray:
    if isinstance(passphrase, str):
        passphrase = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    return bytearray(passphrase)


def _derive(passphrase: bytearray, salt: bytes, params: KdfParams) -> bytearray:
    kdf = Argon2id(
        salt=salt,
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_cost,
    )
    return bytearray(kdf.derive(bytes(passphrase)))


def lock_custodian_key(
    private_key: X25519PrivateKey, passphrase: str | bytes, kdf: KdfParams = DEFAULT_KDF
) -> dict[str, Any]:
    """Encrypt a custodian's private key under its passphrase; return the JSON-ready blob.

    The blob records the public key, the Argon2id parameters and salt, the AES-256-GCM nonce
    and the ciphertext; the AEAD's associated data is the canonical JSON of the blob without
    ``ciphertext``, so none of it can be changed undetected.
    """
    kdf.check()
    secret = _passphrase_bytes(passphrase)
    salt = os.urandom(16)
    nonce = os.urandom(12)
    blob: dict[str, Any] = {
        "cipher": {"name": "AES-256-GCM", "nonce": b64encode(nonce)},
        "format": CUSTODIAN_KEY_FORMAT,
        "kdf": {
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "length": 32,
            "memory_cost": kdf.memory_cost,
            "name": "argon2id",
            "salt": b64encode(salt),
        },
        "public_key": b64encode(private_key.public_key().public_bytes_raw()),
        "version": 1,
    }
    raw = bytearray(private_key.private_bytes_raw())
    key = _derive(secret, salt, kdf)
    try:
        ciphertext = AESGCM(bytes(key)).encrypt(nonce, bytes(raw), canonical_json(blob))
    finally:
        wipe(key)
        wipe(raw)
        wipe(secret)
    blob["ciphertext"] = b64encode(ciphertext)
    return blob


def create_custodian_key(
    passphrase: str | bytes, kdf: KdfParams = DEFAULT_KDF
) -> tuple[X25519PublicKey, dict[str, Any]]:
    """Generate a custodian key pair; return its public key and the passphrase-locked blob.

    The private key is never returned in clear: store the blob, publish the public key.
    """
    private_key = X25519PrivateKey.generate()
    return private_key.public_key(), lock_custodian_key(private_key, passphrase, kdf)


def unlock_custodian_key(
    blob: Mapping[str, Any] | bytes, passphrase: str | bytes
) -> X25519PrivateKey:
    """Unlock a custodian key blob.  Raises :class:`WrongPassphrase` or :class:`MalformedKey`."""
    if isinstance(blob, bytes):
        try:
            blob = parse_json(blob)
        except CanonicalJSONError as exc:
            raise MalformedKey(f"custodian key: {exc}") from exc
    if not isinstance(blob, Mapping):
        raise MalformedKey("custodian key: not a JSON object")
    fields = {"cipher", "ciphertext", "format", "kdf", "public_key", "version"}
    if set(blob) != fields:
        raise MalformedKey(f"custodian key: expected exactly the fields {sorted(fields)}")
    try:
        if blob["format"] != CUSTODIAN_KEY_FORMAT or blob["version"] != 1:
            raise MalformedKey("custodian key: unknown format or version")
        kdf_obj, cipher = blob["kdf"], blob["cipher"]
        if kdf_obj["name"] != "argon2id" or kdf_obj["length"] != 32:
            raise MalformedKey("custodian key: unsupported KDF")
        if cipher["name"] != "AES-256-GCM":
            raise MalformedKey("custodian key: unsupported cipher")
        params = KdfParams(kdf_obj["iterations"], kdf_obj["lanes"], kdf_obj["memory_cost"])
        salt = b64decode(kdf_obj["salt"])
        nonce = b64decode(cipher["nonce"], 12)
        public_raw = b64decode(blob["public_key"], 32)
        ciphertext = b64decode(blob["ciphertext"], 48)
        aad = canonical_json({k: v for k, v in blob.items() if k != "ciphertext"})
    except MalformedKey:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedKey(f"custodian key: missing or invalid field ({exc})") from exc
    params.check()
    if not 8 <= len(salt) <= 64:
        raise MalformedKey("custodian key: bad salt length")
    secret = _passphrase_bytes(passphrase)
    key = _derive(secret, salt, params)
    try:
        raw = bytearray(AESGCM(bytes(key)).decrypt(nonce, ciphertext, aad))
    except InvalidTag:
        raise WrongPassphrase(
            "wrong passphrase for this custodian key (or the key file was altered)"
        ) from None
    finally:
        wipe(key)
        wipe(secret)
    try:
        private_key = X25519PrivateKey.from_private_bytes(bytes(raw))
    finally:
        wipe(raw)
    if not hmac.compare_digest(private_key.public_key().public_bytes_raw(), public_raw):
        raise MalformedKey("custodian key: private key does not match the recorded public key")
    return private_key


# --- shares -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedShare:
    """One custodian's share of a tender key, sealed to that custodian's public key.

    ``index`` is 1-based (custodian order at the ceremony).  JSON shape: see :meth:`to_json`.
    """

    tender: str
    index: int
    threshold: int
    count: int
    tender_public_key: bytes
    custodian_public_key: bytes
    sealed: bytes = field(repr=False)

    def _metadata(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "custodian_public_key": b64encode(self.custodian_public_key),
            "format": SHARE_FORMAT,
            "index": self.index,
            "tender": self.tender,
            "tender_public_key": b64encode(self.tender_public_key),
            "threshold": self.threshold,
            "version": 1,
        }

    def hpke_info(self) -> bytes:
        """HPKE info: label, then SHA-256 of the canonical JSON of everything but ``sealed``."""
        return SHARE_INFO_LABEL + hashlib.sha256(canonical_json(self._metadata())).digest()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata fields plus ``sealed`` (base64 of HPKE enc||ct)."""
        return {**self._metadata(), "sealed": b64encode(self.sealed)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EncryptedShare:
        """Parse :meth:`to_json` output.  Raises :class:`ShareError`."""
        fields = {*EncryptedShare.__dataclass_fields__, "format", "version"}
        if not isinstance(obj, Mapping) or set(obj) != fields:
            raise ShareError(f"encrypted share: expected exactly the fields {sorted(fields)}")
        try:
            if obj["format"] != SHARE_FORMAT or obj["version"] != 1:
                raise ShareError("encrypted share: unknown format or version")
            share = cls(
                tender=obj["tender"],
                index=obj["index"],
                threshold=obj["threshold"],
                count=obj["count"],
                tender_public_key=b64decode(obj["tender_public_key"], 32),
                custodian_public_key=b64decode(obj["custodian_public_key"], 32),
                sealed=b64decode(obj["sealed"]),
            )
        except ShareError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ShareError(f"encrypted share: missing or invalid field ({exc})") from exc
        if not (
            is_identifier(share.tender)
            and is_plain_int(share.count, 1, MAX_CUSTODIANS)
            and is_plain_int(share.threshold, 1, share.count)
            and is_plain_int(share.index, 1, share.count)
        ):
            raise ShareError("encrypted share: invalid tender, index, threshold or count")
        return share


@dataclass(frozen=True)
class KeyCeremony:
    """What the publication-time ceremony leaves: the public key and the sealed shares."""

    tender: str
    threshold: int
    public_key: X25519PublicKey
    shares: tuple[EncryptedShare, ...]

    @property
    def public_key_pem(self) -> bytes:
        return public_key_to_pem(self.public_key)


def split_tender_key(
    private_key: X25519PrivateKey,
    tender: str,
    threshold: int,
    custodian_keys: Sequence[X25519PublicKey],
    *,
    passphrase: bytes = b"",
) -> list[EncryptedShare]:
    """Split a tender private key k-of-n (SLIP-39) and seal share i to custodian i's key.

    ``passphrase`` is SLIP-39's optional sharing passphrase (printable ASCII): it is needed
    again to rebuild.  The split is checked by recombining ``threshold`` shares before
    anything is returned.
    """
    check_identifier(tender, "tender id")
    count = len(custodian_keys)
    if not 1 <= count <= MAX_CUSTODIANS:
        raise ValueError(f"between 1 and {MAX_CUSTODIANS} custodians are needed, got {count}")
    if not (isinstance(threshold, int) and 1 <= threshold <= count):
        raise ValueError(f"the threshold must be between 1 and {count}, got {threshold}")
    if threshold == 1 and count > 1:
        raise ValueError("a threshold of 1 with several custodians is not supported (SLIP-39)")
    raws = [_public_raw(key) for key in custodian_keys]
    if len(set(raws)) != count:
        raise ValueError("the custodians' public keys must be distinct")
    tender_public = private_key.public_key().public_bytes_raw()
    secret = bytearray(private_key.private_bytes_raw())
    try:
        groups = generate_mnemonics(1, [(threshold, count)], bytes(secret), passphrase=passphrase)
        mnemonics = groups[0]
        if not hmac.compare_digest(
            combine_mnemonics(mnemonics[:threshold], passphrase=passphrase), bytes(secret)
        ):
            raise RuntimeError("SLIP-39 split did not recombine")  # never expected
    finally:
        wipe(secret)
    shares = []
    for index, (custodian_raw, mnemonic) in enumerate(zip(raws, mnemonics, strict=True), 1):
        draft = EncryptedShare(
            tender=tender,
            index=index,
            threshold=threshold,
            count=count,
            tender_public_key=tender_public,
            custodian_public_key=custodian_raw,
            sealed=b"",
        )
        sealed = _SUITE.encrypt(
            mnemonic.encode("ascii"),
            X25519PublicKey.from_public_bytes(custodian_raw),
            info=draft.hpke_info(),
        )
        shares.append(dataclasses.replace(draft, sealed=sealed))
    return shares


def run_key_ceremony(
    tender: str,
    threshold: int,
    custodian_keys: Sequence[X25519PublicKey],
    *,
    passphrase: bytes = b"",
) -> KeyCeremony:
    """Generate a tender key pair, split it to the custodians, and forget the private key.

    Returns only the public key and the sealed shares (one per custodian, in order).
    """
    private_key = generate_tender_key()
    shares = split_tender_key(private_key, tender, threshold, custodian_keys, passphrase=passphrase)
    public_key = private_key.public_key()
    del private_key  # best effort: the OpenSSL object is freed when unreferenced
    return KeyCeremony(tender, threshold, public_key, tuple(shares))


def decrypt_share(
    share: EncryptedShare | Mapping[str, Any], custodian_private_key: X25519PrivateKey
) -> str:
    """Unseal a custodian's share: returns its SLIP-39 mnemonic (the paper-backup words).

    Raises :class:`ShareError` if the share is not for this custodian key or was altered.
    """
    if not isinstance(share, EncryptedShare):
        share = EncryptedShare.from_json(share)
    own = custodian_private_key.public_key().public_bytes_raw()
    if not hmac.compare_digest(own, share.custodian_public_key):
        raise ShareError(f"share {share.index} of tender {share.tender} is for another custodian")
    try:
        plaintext = _SUITE.decrypt(share.sealed, custodian_private_key, info=share.hpke_info())
    except (InvalidTag, ValueError):
        raise ShareError(
            f"share {share.index} of tender {share.tender} cannot be decrypted "
            "(altered, or sealed to another key)"
        ) from None
    return plaintext.decode("ascii")


def _mnemonic_reason(exc: Exception) -> str:
    """The library's message without quoted words: error messages may end up in logs."""
    return re.sub(r"(\"[^\"]*\"|'[^']*')", "...", str(exc))


def _normalise_mnemonic(mnemonic: str | Sequence[str]) -> str:
    words = mnemonic.split() if isinstance(mnemonic, str) else list(mnemonic)
    return " ".join(word.strip().lower() for word in words)


def rebuild_private_key(
    shares: Sequence[str | Sequence[str]],
    expected_public_key: X25519PublicKey | bytes,
    *,
    passphrase: bytes = b"",
) -> X25519PrivateKey:
    """Combine k SLIP-39 shares into the tender private key, checked against the public key.

    ``shares`` are mnemonics (strings, or lists of words, e.g. typed in from paper).  The
    rebuilt key is ALWAYS compared with ``expected_public_key`` (the published tender key):
    a wrong share that still passes SLIP-39's checksums, or a wrong sharing passphrase, gives
    another key and raises :class:`KeyMismatch`.  Raises :class:`InsufficientShares` with
    fewer than k shares, :class:`ShareError` for malformed or mismatched shares.

    The returned key object holds the secret inside OpenSSL; the intermediate secret bytes
    are immutable and cannot be wiped (see the module docstring).
    """
    expected = _public_raw(expected_public_key)
    mnemonics = [_normalise_mnemonic(share) for share in shares]
    if not mnemonics:
        raise InsufficientShares("no shares given")
    parsed = []
    for number, mnemonic in enumerate(mnemonics, start=1):
        try:
            parsed.append(Share.from_mnemonic(mnemonic))
        except MnemonicError as exc:
            raise ShareError(
                f"share {number} is not a valid share: {_mnemonic_reason(exc)}"
            ) from None
    if len({share.group_parameters() for share in parsed}) != 1:
        raise ShareError("the shares do not all belong to the same tender key")
    if len({share.index for share in parsed}) != len(parsed):
        raise ShareError("the same share was given more than once")
    threshold = parsed[0].member_threshold
    if len(parsed) < threshold:
        raise InsufficientShares(
            f"{threshold} shares are needed to rebuild the key, only {len(parsed)} given"
        )
    try:
        # SLIP-39 wants exactly k shares; extra ones are not needed (the key check below
        # catches a wrong one among those used).
        secret = combine_mnemonics(mnemonics[:threshold], passphrase=passphrase)
    except (MnemonicError, ValueError) as exc:
        raise ShareError(f"the shares cannot be combined: {_mnemonic_reason(exc)}") from None
    if len(secret) != 32:
        raise KeyMismatch("the shares do not hold a 32-byte X25519 key")
    private_key = X25519PrivateKey.from_private_bytes(secret)
    del secret
    if not hmac.compare_digest(private_key.public_key().public_bytes_raw(), expected):
        raise KeyMismatch(
            "the rebuilt key does not match the published tender public key: a share or the "
            "sharing passphrase is wrong"
        )
    return private_key
