"""Sealed-bid envelopes: streaming sealing, key-less inspection and verified opening.

The byte format is specified in ``bidding/FORMAT.md``; this module is its reference
implementation.  In short::

    "FAIRBID" 0x01 | uint32be header length | header (canonical JSON) | chunk 0 | chunk 1 | ...

The content (all parts concatenated, in header order) is cut into ``chunk_size`` pieces,
each sealed with AES-256-GCM under a random content key, with the nonce made of the chunk
counter and a last-chunk flag (the STREAM construction) and the SHA-256 of the header bytes
as associated data.  The content key is sealed to the tender's X25519 public key with HPKE
(RFC 9180, base mode), whose ``info`` binds the header (tender, bidder, parts, sizes).

Memory stays bounded: sealing and opening hold one input and one output chunk buffer,
whatever the size of the envelope.  For speed, give the reader an unbuffered file
(``open(path, "rb", buffering=0)``): chunks are read straight into a reused buffer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import mmap
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .canonical import (
    MAX_SAFE_INTEGER,
    CanonicalJSONError,
    b64decode,
    b64encode,
    canonical_json,
    check_identifier,
    is_hex_sha256,
    is_identifier,
    is_plain_int,
    parse_canonical_json,
    parse_json,
)
from .errors import (
    DecryptionError,
    EnvelopeError,
    EnvelopeHashMismatch,
    IntegrityError,
    MalformedEnvelope,
    WrongBidder,
    WrongLot,
    WrongTender,
)
from .keys import wipe

__all__ = [
    "ANY_LOT",
    "CHUNK_SIZE",
    "FORMAT_VERSION",
    "FORMAT_VERSION_LOT",
    "MAGIC",
    "AnyLot",
    "DecryptResult",
    "EnvelopeHeader",
    "EnvelopeInfo",
    "OpenedEnvelope",
    "Part",
    "PartSource",
    "SealResult",
    "bid_parts",
    "decode_commercial",
    "decrypt_envelope",
    "encode_commercial",
    "inspect_envelope",
    "inspect_header",
    "open_envelope",
    "part_filename",
    "read_header",
    "seal",
]

# --- constants (see FORMAT.md) ----------------------------------------------------------------

MAGIC = b"FAIRBID"  # 7 ASCII bytes, then one version byte
FORMAT_VERSION = 1  # an envelope for a tender of one lot: no lot in the header
FORMAT_VERSION_LOT = 2  # version 1 plus the lot the envelope is for (a tender of several lots)
VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_LOT)
FORMAT_NAME = "fairbid-envelope"
PREFIX = MAGIC + bytes([FORMAT_VERSION])
PREFIX_SIZE = len(PREFIX)  # 8
LENGTH_SIZE = 4  # uint32 big-endian header length
MAX_HEADER_SIZE = 128 * 1024
MAX_PARTS = 1000

CHUNK_SIZE = 1 << 20  # 1 MiB, what writers use
MIN_CHUNK_SIZE = 1 << 6  # readers accept any power of two in [64 B, 16 MiB]
MAX_CHUNK_SIZE = 1 << 24
MAX_CHUNKS = 1 << 32  # the chunk counter is 32 bits
TAG_SIZE = 16
KEY_SIZE = 32
NONCE_SIZE = 12

# HPKE suite (RFC 9180 registry ids): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
SUITE_IDS = {"aead": 0x0002, "kdf": 0x0001, "kem": 0x0020}
ENC_SIZE = 32
SEALED_KEY_SIZE = KEY_SIZE + TAG_SIZE
HPKE_INFO_LABEL = b"fairbid-envelope-v1\x00"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

COMMERCIAL = "commercial"
TECHNICAL = "technical"
QUALIFICATION_PREFIX = "qualification-"
_HEADER_KEYS = {"bidder", "chunk_size", "format", "key", "parts", "suite", "tender", "version"}
_HEADER_KEYS_BY_VERSION = {
    FORMAT_VERSION: frozenset(_HEADER_KEYS),
    FORMAT_VERSION_LOT: frozenset(_HEADER_KEYS | {"lot"}),
}


class AnyLot(Enum):
    """The default of ``expected_lot``: the lot is not checked."""

    ANY = "any"


ANY_LOT = AnyLot.ANY

_COPY_BLOCK = 1 << 20
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux
# MADV_POPULATE_READ (Linux 5.14): what MAP_POPULATE does, but after other advice is given.
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22 if _MADV_HUGEPAGE else None)


class Writable(Protocol):
    """Anything with ``write(bytes-like)``; it must consume the data before returning."""

    def write(self, data: Any, /) -> Any: ...


# --- data classes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One part of a bid as listed in the header: its name and plaintext size in bytes."""

    name: str
    size: int


@dataclass(frozen=True)
class PartSource:
    """A part to seal: its name, a binary stream positioned at its start, and its size.

    ``size`` may be omitted for seekable streams (it is then "from here to the end").
    """

    name: str
    stream: BinaryIO
    size: int | None = None


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed, validated envelope header.  ``raw`` is the exact header bytes."""

    version: int
    tender: str
    bidder: str
    chunk_size: int
    parts: tuple[Part, ...]
    enc: bytes = field(repr=False)
    sealed_key: bytes = field(repr=False)
    raw: bytes = field(repr=False)
    lot: str | None = None  # version 2 only: the lot this envelope is for

    @property
    def prefix(self) -> bytes:
        """Magic and version byte."""
        return MAGIC + bytes([self.version])

    @cached_property
    def sha256(self) -> bytes:
        """SHA-256 of the header bytes: the associated data of every chunk."""
        return hashlib.sha256(self.raw).digest()

    @cached_property
    def core(self) -> bytes:
        """Canonical JSON of the header without its ``key`` member (what HPKE info binds)."""
        return canonical_json(_header_core_object(self))

    @property
    def hpke_info(self) -> bytes:
        """The HPKE ``info``: label, then SHA-256 of :attr:`core`."""
        return HPKE_INFO_LABEL + hashlib.sha256(self.core).digest()

    @cached_property
    def content_size(self) -> int:
        """Total plaintext size of all parts."""
        return sum(part.size for part in self.parts)

    @cached_property
    def chunk_count(self) -> int:
        """Number of chunks: at least one (an empty content has one empty chunk)."""
        return max(1, -(-self.content_size // self.chunk_size))

    @property
    def body_offset(self) -> int:
        """Offset of the first chunk in the envelope."""
        return PREFIX_SIZE + LENGTH_SIZE + len(self.raw)

    @property
    def envelope_size(self) -> int:
        """Exact size in bytes the whole envelope must have."""
        return self.body_offset + self.content_size + TAG_SIZE * self.chunk_count

    def chunk_plain_size(self, index: int) -> int:
        """Plaintext size of chunk ``index``."""
        if index < self.chunk_count - 1:
            return self.chunk_size
        return self.content_size - self.chunk_size * (self.chunk_count - 1)

    def part_names(self) -> list[str]:
        return [part.name for part in self.parts]


@dataclass(frozen=True)
class SealResult:
    """What :func:`seal` wrote: the header, the envelope size and its SHA-256 (hex)."""

    header: EnvelopeHeader
    size: int
    sha256: str | None


@dataclass(frozen=True)
class EnvelopeInfo:
    """Result of :func:`inspect_envelope`: the header, the size and the SHA-256 (hex)."""

    header: EnvelopeHeader
    size: int
    sha256: str


@dataclass(frozen=True)
class DecryptResult:
    """Result of :func:`decrypt_envelope`."""

    header: EnvelopeHeader
    sha256: str | None


@dataclass(frozen=True)
class OpenedEnvelope:
    """Result of :func:`open_envelope`: header, output directory and a file per part."""

    header: EnvelopeHeader
    directory: Path
    files: dict[str, Path]
    sha256: str | None


# --- helpers ------------------------------------------------------------------------------


def part_filename(name: str) -> str:
    """File name a part is opened to: ``commercial.json`` for the commercial part, else its
    name (part names are validated, so they are safe file names)."""
    return "commercial.json" if name == COMMERCIAL else name


def _check_part_names(names: Sequence[str]) -> None:
    """commercial, then optionally technical, then qualification-1 .. qualification-N."""
    if not names or names[0] != COMMERCIAL:
        raise ValueError("the first part must be 'commercial'")
    rest = list(names[1:])
    if rest and rest[0] == TECHNICAL:
        rest.pop(0)
    for number, name in enumerate(rest, start=1):
        if name != f"{QUALIFICATION_PREFIX}{number}":
            raise ValueError(
                f"unexpected part name {name!r}: expected 'technical' after 'commercial', "
                f"then qualification-1, qualification-2, ... in order"
            )
    if len(names) > MAX_PARTS:
        raise ValueError(f"at most {MAX_PARTS} parts")


def _check_chunk_size(chunk_size: object) -> int:
    if (
        not is_plain_int(chunk_size, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
        or chunk_size & (chunk_size - 1)  # type: ignore[operator]
    ):
        raise ValueError(
            f"chunk_size must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}"
        )
    return chunk_size  # type: ignore[return-value]


def _header_core_object(header: EnvelopeHeader) -> dict[str, Any]:
    core: dict[str, Any] = {
        "bidder": header.bidder,
        "chunk_size": header.chunk_size,
        "format": FORMAT_NAME,
        "parts": [{"name": part.name, "size": part.size} for part in header.parts],
        "suite": dict(SUITE_IDS),
        "tender": header.tender,
        "version": header.version,
    }
    if header.version == FORMAT_VERSION_LOT:
        core["lot"] = header.lot
    return core


_NONCE = struct.Struct(">7xI?")  # 7 zero bytes | uint32be chunk index | 0x01 on the last chunk


def _nonce(index: int, last: bool) -> bytes:
    return _NONCE.pack(index, last)


def _seekable_remaining(stream: BinaryIO) -> int | None:
    """Bytes from the current position to the end, or None if the stream cannot seek."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, AttributeError, ValueError):
        return None
    return end - here


def _read_exact(stream: BinaryIO, length: int) -> bytes:
    """Read ``length`` bytes, fewer only at end of stream (raw files may return short)."""
    buffer = bytearray(length)
    return bytes(buffer[: _readinto(stream, memoryview(buffer))])


def _readinto(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` as far as possible; return bytes read (short on EOF)."""
    total = 0
    length = len(view)
    readinto = getattr(stream, "readinto", None)
    while total < length:
        if readinto is not None:
            count = readinto(view[total:])
        else:
            data = stream.read(length - total)
            count = len(data)
            view[total : total + count] = data
        if not count:
            break
        total += count
    return total


# --- header -------------------------------------------------------------------------------


def _parse_header(raw: bytes, version: int = FORMAT_VERSION) -> EnvelopeHeader:
    """Parse the header of an envelope whose version byte is ``version``."""
    try:
        obj = parse_canonical_json(raw)
    except CanonicalJSONError as exc:
        raise MalformedEnvelope(f"header: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedEnvelope("header: not a JSON object")
    keys = set(obj)
    expected_keys = _HEADER_KEYS_BY_VERSION[version]
    if keys != expected_keys:
        missing = sorted(expected_keys - keys)
        extra = sorted(keys - expected_keys)
        raise MalformedEnvelope(f"header: missing fields {missing}, unknown fields {extra}")
    if obj["format"] != FORMAT_NAME:
        raise MalformedEnvelope(f"header: format must be {FORMAT_NAME!r}")
    if obj["version"] != version or type(obj["version"]) is not int:
        raise MalformedEnvelope(
            f"header: version {obj['version']!r} does not match the magic (version {version})"
        )
    lot = obj.get("lot")
    if version == FORMAT_VERSION_LOT and not is_identifier(lot):
        raise MalformedEnvelope("header: invalid lot reference")
    if not is_identifier(obj["tender"]):
        raise MalformedEnvelope("header: invalid tender id")
    if not is_identifier(obj["bidder"]):
        raise MalformedEnvelope("header: invalid bidder id")
    try:
        chunk_size = _check_chunk_size(obj["chunk_size"])
    except ValueError as exc:
        raise MalformedEnvelope(f"header: {exc}") from exc
    if obj["suite"] != SUITE_IDS or any(type(v) is not int for v in obj["suite"].values()):
        raise MalformedEnvelope(
            "header: unsupported HPKE suite (expected kem 32, kdf 1, aead 2: "
            "X25519, HKDF-SHA256, AES-256-GCM)"
        )
    parts_obj = obj["parts"]
    if not isinstance(parts_obj, list):
        raise MalformedEnvelope("header: parts must be a list")
    parts = []
    for item in parts_obj:
        if (
            not isinstance(item, dict)
            or set(item) != {"name", "size"}
            or not isinstance(item["name"], str)
            or not is_plain_int(item["size"])
        ):
            raise MalformedEnvelope("header: each part must be {name: string, size: integer}")
        parts.append(Part(item["name"], item["size"]))
    try:
        _check_part_names([part.name for part in parts])
    except ValueError as exc:
        raise MalformedEnvelope(f"header: {exc}") from exc
    content_size = sum(part.size for part in parts)
    if content_size > MAX_SAFE_INTEGER:
        raise MalformedEnvelope("header: total size too large")
    if -(-content_size // chunk_size) > MAX_CHUNKS:
        raise MalformedEnvelope("header: too many chunks")
    key = obj["key"]
    if not isinstance(key, dict) or set(key) != {"enc", "sealed"}:
        raise MalformedEnvelope("header: key must be {enc, sealed}")
    try:
        enc = b64decode(key["enc"], ENC_SIZE)
        sealed = b64decode(key["sealed"], SEALED_KEY_SIZE)
    except ValueError as exc:
        raise MalformedEnvelope(f"header: key: {exc}") from exc
    return EnvelopeHeader(
        version=version,
        lot=lot,
        tender=obj["tender"],
        bidder=obj["bidder"],
        chunk_size=chunk_size,
        parts=tuple(parts),
        enc=enc,
        sealed_key=sealed,
        raw=raw,
    )


def read_header(stream: BinaryIO) -> EnvelopeHeader:
    """Read and validate the prefix and header at the stream's position.

    Leaves the stream at the first chunk.  Raises :class:`MalformedEnvelope`.
    """
    prefix = _read_exact(stream, PREFIX_SIZE + LENGTH_SIZE)
    if len(prefix) < PREFIX_SIZE + LENGTH_SIZE:
        raise MalformedEnvelope("too short to be an envelope")
    if prefix[: len(MAGIC)] != MAGIC:
        raise MalformedEnvelope("not a Fairbid envelope (bad magic)")
    version = prefix[len(MAGIC)]
    if version not in VERSIONS:
        raise MalformedEnvelope(
            f"unsupported envelope format version {version} (this reader knows 1 and 2)"
        )
    length = int.from_bytes(prefix[PREFIX_SIZE:], "big")
    if not 2 <= length <= MAX_HEADER_SIZE:
        raise MalformedEnvelope(f"header length {length} out of range (max {MAX_HEADER_SIZE})")
    raw = _read_exact(stream, length)
    if len(raw) != length:
        raise MalformedEnvelope("truncated: the header is incomplete")
    return _parse_header(raw, version)


def _check_expected(
    header: EnvelopeHeader,
    expected_tender: str | None,
    expected_bidder: str | None,
    expected_lot: str | AnyLot | None = ANY_LOT,
) -> None:
    if expected_tender is not None and header.tender != expected_tender:
        raise WrongTender(f"envelope is for tender {header.tender!r}, not {expected_tender!r}")
    if expected_bidder is not None and header.bidder != expected_bidder:
        raise WrongBidder(f"envelope is from bidder {header.bidder!r}, not {expected_bidder!r}")
    if expected_lot is not ANY_LOT and header.lot != expected_lot:
        if expected_lot is None:
            raise WrongLot(
                f"envelope is for lot {header.lot!r}, but this tender is not divided into lots"
            )
        if header.lot is None:
            raise WrongLot(f"envelope names no lot, expected lot {expected_lot!r}")
        raise WrongLot(f"envelope is for lot {header.lot!r}, not {expected_lot!r}")


def _check_size(header: EnvelopeHeader, actual: int) -> None:
    expected = header.envelope_size
    if actual < expected:
        raise MalformedEnvelope(
            f"truncated: envelope has {actual} bytes, its header requires {expected}"
        )
    if actual > expected:
        raise MalformedEnvelope(
            f"trailing data: envelope has {actual} bytes, its header requires {expected}"
        )


def inspect_header(
    stream: BinaryIO,
    *,
    expected_tender: str | None = None,
    expected_bidder: str | None = None,
    expected_lot: str | AnyLot | None = ANY_LOT,
) -> EnvelopeHeader:
    """Parse and validate an envelope's header and framing without any key.

    Checks the magic and version, that the header is canonical JSON of the expected shape
    (suite, part names and order, sizes, key fields), the expected tender and bidder if
    given, the expected lot if given (``None``: the envelope must name no lot), and that
    the envelope's length is exactly what the header implies (the chunk framing is fully
    determined by the part sizes and the chunk size).  A seekable stream is
    measured and put back where it was; a non-seekable one is read to its end in bounded
    memory.  Raises :class:`MalformedEnvelope`, :class:`WrongTender`, :class:`WrongBidder`,
    :class:`WrongLot`.

    This cannot detect altered ciphertext: only the tender key can (when opening).
    """
    start = None
    with contextlib.suppress(OSError, AttributeError, ValueError):
        start = stream.tell() if stream.seekable() else None
    header = read_header(stream)
    _check_expected(header, expected_tender, expected_bidder, expected_lot)
    remaining = _seekable_remaining(stream)
    if remaining is None:
        remaining = 0
        while block := stream.read(_COPY_BLOCK):
            remaining += len(block)
    _check_size(header, header.body_offset + remaining)
    if start is not None:
        stream.seek(start)
    return header


def inspect_envelope(
    stream: BinaryIO,
    *,
    expected_tender: str | None = None,
    expected_bidder: str | None = None,
    expected_lot: str | AnyLot | None = ANY_LOT,
) -> EnvelopeInfo:
    """Like :func:`inspect_header`, and also read everything once to compute the envelope's
    SHA-256 and size (what a receipt records).  Bounded memory."""
    digest = hashlib.sha256()
    header = read_header(stream)
    _check_expected(header, expected_tender, expected_bidder, expected_lot)
    digest.update(header.prefix + len(header.raw).to_bytes(LENGTH_SIZE, "big") + header.raw)
    size = header.body_offset
    buffer = bytearray(_COPY_BLOCK)
    view = memoryview(buffer)
    while count := _readinto(stream, view):
        digest.update(view[:count])
        size += count
    _check_size(header, size)
    return EnvelopeInfo(header=header, size=size, sha256=digest.hexdigest())


# --- commercial part ----------------------------------------------------------------------

_PRICE_RE = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")


def _decimals_to_strings(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amounts must be finite decimals")
        return format(value, "f")
    if isinstance(value, dict):
        return {key: _decimals_to_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_decimals_to_strings(item) for item in value]
    return value


def _check_commercial(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("the commercial part must be a JSON object")
    if "price" in value and (
        not isinstance(value["price"], str) or not _PRICE_RE.fullmatch(value["price"])
    ):
        raise ValueError('"price" must be a decimal string such as "1234567.89"')
    return value


def encode_commercial(fields: dict[str, Any]) -> bytes:
    """The bytes of the ``commercial`` part: canonical JSON of the commercial fields.

    ``Decimal`` values become plain decimal strings; floats are refused (money is never a
    float); ``price``, if present, must be a non-negative decimal string.
    """
    value = _check_commercial(_decimals_to_strings(fields))
    try:
        return canonical_json(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def decode_commercial(data: bytes) -> dict[str, Any]:
    """Parse a ``commercial`` part strictly (UTF-8 JSON object, no floats, no duplicate keys,
    ``price`` a decimal string).  Raises ValueError."""
    try:
        value = parse_json(data)
    except CanonicalJSONError as exc:
        raise ValueError(f"commercial part: {exc}") from exc
    return _check_commercial(value)


def bid_parts(
    commercial: bytes | dict[str, Any],
    technical: BinaryIO | None = None,
    qualifications: Sequence[BinaryIO] = (),
) -> list[PartSource]:
    """Build the part list of a bid: commercial (bytes or fields), technical, qualifications.

    Streams must be seekable (their size is taken from the current position to the end);
    otherwise build :class:`PartSource` objects with explicit sizes.
    """
    data = commercial if isinstance(commercial, bytes) else encode_commercial(commercial)
    parts = [PartSource(COMMERCIAL, io.BytesIO(data), len(data))]
    if technical is not None:
        parts.append(PartSource(TECHNICAL, technical))
    parts.extend(
        PartSource(f"{QUALIFICATION_PREFIX}{number}", stream)
        for number, stream in enumerate(qualifications, start=1)
    )
    return parts


# --- sealing ------------------------------------------------------------------------------


class _PartReader:
    """Reads the concatenation of the parts, checking each yields exactly its size."""

    def __init__(self, sources: Sequence[PartSource], sizes: Sequence[int]) -> None:
        self._sources = sources
        self._sizes = sizes
        self._index = 0
        self._left = sizes[0] if sizes else 0

    def _finish_part(self) -> None:
        source = self._sources[self._index]
        if source.stream.read(1):
            raise ValueError(f"part {source.name!r} is longer than its declared size")
        self._index += 1
        if self._index < len(self._sizes):
            self._left = self._sizes[self._index]

    def fill(self, view: memoryview) -> None:
        filled = 0
        while filled < len(view):
            while self._left == 0:
                self._finish_part()
            source = self._sources[self._index]
            want = min(self._left, len(view) - filled)
            got = _readinto(source.stream, view[filled : filled + want])
            if got < want:
                raise ValueError(
                    f"part {source.name!r} ended before its declared size "
                    f"({self._sizes[self._index] - self._left + got} < "
                    f"{self._sizes[self._index]} bytes)"
                )
            filled += got
            self._left -= got

    def close(self) -> None:
        while self._index < len(self._sizes):
            if self._left:
                raise ValueError("internal error: content not fully read")
            self._finish_part()


def seal(
    out: Writable,
    tender_public_key: X25519PublicKey,
    tender: str,
    bidder: str,
    parts: Sequence[PartSource],
    *,
    chunk_size: int = CHUNK_SIZE,
    hash_output: bool = True,
    lot: str | None = None,
) -> SealResult:
    """Seal ``parts`` into an envelope written to ``out``, streaming in bounded memory.

    ``parts`` must be commercial, then optionally technical, then qualification-1..N (see
    :func:`bid_parts`).  Returns the header, the envelope size and, unless ``hash_output``
    is false, its SHA-256 (the hash the receipt will show).  ``lot``: the lot the bid is for,
    in a tender divided into lots (a version 2 envelope binding it); None for a tender of
    one lot (version 1).  On an exception ``out`` holds a
    partial envelope that must be discarded.  Raises ValueError on bad arguments or a part
    stream whose length differs from its declared size.
    """
    if not isinstance(tender_public_key, X25519PublicKey):
        raise TypeError("tender_public_key must be an X25519 public key")
    check_identifier(tender, "tender id")
    check_identifier(bidder, "bidder id")
    if lot is not None:
        check_identifier(lot, "lot reference")
    _check_chunk_size(chunk_size)
    _check_part_names([source.name for source in parts])
    sizes = []
    for source in parts:
        size = source.size if source.size is not None else _seekable_remaining(source.stream)
        if size is None:
            raise ValueError(f"part {source.name!r}: give the size of a non-seekable stream")
        if not is_plain_int(size):
            raise ValueError(f"part {source.name!r}: invalid size {size!r}")
        sizes.append(size)
    if -(-sum(sizes) // chunk_size) > MAX_CHUNKS:
        raise ValueError("content too large for this chunk size")

    content_key = bytearray(os.urandom(KEY_SIZE))
    try:
        draft = EnvelopeHeader(
            version=FORMAT_VERSION if lot is None else FORMAT_VERSION_LOT,
            lot=lot,
            tender=tender,
            bidder=bidder,
            chunk_size=chunk_size,
            parts=tuple(Part(s.name, size) for s, size in zip(parts, sizes, strict=True)),
            enc=b"",
            sealed_key=b"",
            raw=b"",
        )
        sealed = _SUITE.encrypt(bytes(content_key), tender_public_key, info=draft.hpke_info)
        header_obj = _header_core_object(draft)
        header_obj["key"] = {
            "enc": b64encode(sealed[:ENC_SIZE]),
            "sealed": b64encode(sealed[ENC_SIZE:]),
        }
        raw = canonical_json(header_obj)
        if len(raw) > MAX_HEADER_SIZE:
            raise ValueError("header too large (too many parts)")
        header = _parse_header(
            raw, draft.version
        )  # the reader's own checks, on what we are about to write
        digest = hashlib.sha256() if hash_output else None
        size = _encrypt_content(out, header, parts, sizes, bytes(content_key), digest)
    finally:
        wipe(content_key)
    return SealResult(header=header, size=size, sha256=digest.hexdigest() if digest else None)


def _encrypt_content(
    out: Writable,
    header: EnvelopeHeader,
    parts: Sequence[PartSource],
    sizes: Sequence[int],
    key: bytes,
    digest: Any,
) -> int:
    def emit(data: bytes | memoryview) -> None:
        out.write(data)
        if digest is not None:
            digest.update(data)

    emit(header.prefix + len(header.raw).to_bytes(LENGTH_SIZE, "big") + header.raw)
    reader = _PartReader(parts, sizes)
    aes = algorithms.AES(key)
    aad = header.sha256
    count = header.chunk_count
    plain_buffer = memoryview(bytearray(header.chunk_size))
    sealed_buffer = memoryview(bytearray(header.chunk_size + TAG_SIZE + 15))
    for index in range(count):
        plain = plain_buffer[: header.chunk_plain_size(index)]
        reader.fill(plain)
        encryptor = Cipher(aes, modes.GCM(_nonce(index, index == count - 1))).encryptor()
        encryptor.authenticate_additional_data(aad)
        written = encryptor.update_into(plain, sealed_buffer)
        encryptor.finalize()
        sealed_buffer[written : written + TAG_SIZE] = encryptor.tag
        emit(sealed_buffer[: written + TAG_SIZE])
    reader.close()
    return header.envelope_size


# --- opening ------------------------------------------------------------------------------


def _unseal_content_key(header: EnvelopeHeader, private_key: X25519PrivateKey) -> bytearray:
    if not isinstance(private_key, X25519PrivateKey):
        raise TypeError("the tender private key must be an X25519 private key")
    try:
        key = _SUITE.decrypt(header.enc + header.sealed_key, private_key, info=header.hpke_info)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(
            "the content key cannot be unsealed: wrong tender key, or the header was altered "
            "after sealing"
        ) from exc
    if len(key) != KEY_SIZE:
        raise DecryptionError("the sealed content key has the wrong length")
    return bytearray(key)


class _PartWriter:
    """Distributes decrypted content to one sink per part, in order."""

    def __init__(self, header: EnvelopeHeader, sink_for: Callable[[str], Writable]) -> None:
        self._parts = header.parts
        self._sink_for = sink_for
        self._index = -1
        self._left = 0
        self._sink: Writable | None = None

    def _next_part(self) -> None:
        self._index += 1
        part = self._parts[self._index]
        self._sink = self._sink_for(part.name)
        self._left = part.size

    def write(self, view: memoryview) -> None:
        if 0 < len(view) <= self._left:  # the common case: the chunk is inside the current part
            self._sink.write(view)  # type: ignore[union-attr]
            self._left -= len(view)
            return
        done = 0
        while done < len(view):
            while self._left == 0:
                self._next_part()
            take = min(self._left, len(view) - done)
            self._sink.write(view[done : done + take])  # type: ignore[union-attr]
            done += take
            self._left -= take

    def close(self) -> None:
        # Parts left (trailing empty parts, or all parts of an empty content) get their sink.
        while self._index + 1 < len(self._parts):
            self._next_part()


class _StreamChunks:
    """Reads sealed chunks from a stream into one reused buffer."""

    def __init__(self, stream: BinaryIO, chunk_size: int) -> None:
        self._stream = stream
        self._buffer = memoryview(bytearray(chunk_size + TAG_SIZE))

    def read(self, size: int) -> memoryview:
        view = self._buffer[:size]
        got = _readinto(self._stream, view)
        if got < size:
            raise MalformedEnvelope(f"truncated: a chunk has {got} of {size} bytes")
        return view

    def finish(self) -> None:
        if self._stream.read(1):
            raise MalformedEnvelope("trailing data after the last chunk")


class _WindowHasher:
    """Hashes mapped envelope bytes in a second thread while the main thread decrypts them.

    ``hashlib`` releases the GIL while it hashes a large buffer, so on two cores the receipt
    hash check costs little more than the hash alone (hashing is the slower of the two).
    The decryption holds the GIL, so :meth:`submit` waits until the hashing thread has
    taken the window (and released the GIL inside ``update``): otherwise that thread only
    starts once the main thread blocks, and the two run one after the other.  One window is
    hashed at a time, in file order; a window is unmapped only after its hash is done
    (:meth:`wait`).
    """

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._pool = _hashing_pool()
        self._pending: tuple[Future[None], memoryview] | None = None

    def _hash(self, view: memoryview, started: threading.Event) -> None:
        started.set()
        self._digest.update(view)

    def submit(self, view: memoryview) -> None:
        self.wait()
        started = threading.Event()
        self._pending = (self._pool.submit(self._hash, view, started), view)
        started.wait()

    def wait(self) -> None:
        if self._pending is not None:
            future, view = self._pending
            self._pending = None
            try:
                future.result()
            finally:
                view.release()

    def close(self) -> None:
        self.wait()


_HASHING_POOL: ThreadPoolExecutor | None = None
_HASHING_POOL_LOCK = threading.Lock()


def _hashing_pool() -> ThreadPoolExecutor:
    """The process's hashing thread, started once: starting and joining a thread per
    envelope cost ~0.3 ms, a quarter of the opening of a 2 MB envelope.  Openings running
    at once in several threads share it (their windows are hashed in turn)."""
    global _HASHING_POOL
    with _HASHING_POOL_LOCK:
        if _HASHING_POOL is None:
            _HASHING_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="envelope-sha256")
        return _HASHING_POOL


def _forget_hashing_pool() -> None:
    # A forked child (an RQ work horse, a gunicorn worker) has no copy of the thread.
    global _HASHING_POOL, _HASHING_POOL_LOCK
    _HASHING_POOL = None
    _HASHING_POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_hashing_pool)


class _MappedChunks:
    """Reads sealed chunks of a regular file through a sliding read-only memory map.

    Decrypting straight from the page cache saves a copy per chunk (opening runs ~25 %
    faster); the window bounds the resident memory whatever the file size.  Windows start on
    2 MiB boundaries of the file, so that no large page-cache folio (up to 2 MiB on 6.x
    kernels) is split between two windows: a 2 MiB folio is then mapped with one page-table
    entry instead of 512.
    """

    WINDOW = 16 << 20
    ALIGN = max(2 << 20, mmap.ALLOCATIONGRANULARITY)

    def __init__(
        self,
        stream: BinaryIO,
        fd: int,
        start: int,
        end: int,
        chunk_size: int,
        hasher: _WindowHasher | None = None,
    ) -> None:
        self._stream = stream
        self._hasher = hasher
        self._hashed = start
        self._fd = fd
        self._position = start
        self._end = end
        # Two windows are mapped at once while one is hashed: half the size each then.
        window = self.WINDOW // 2 if hasher is not None else self.WINDOW
        self._span = max(window, chunk_size + TAG_SIZE + self.ALIGN)
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        self._map_start = self._map_end = 0

    def _remap(self, offset: int) -> None:
        start = offset - offset % self.ALIGN
        end = min(self._end, start + self._span)
        # With a hashing thread the next window is mapped (its page tables filled at once)
        # while the previous one is still being hashed, then the previous one is let go.
        new_map = mmap.mmap(
            self._fd, end - start, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=start
        )
        _advise_window(new_map, populate=self._hasher is not None)
        self._unmap()
        self._map, self._map_start, self._map_end = new_map, start, end
        self._view = memoryview(self._map)
        if self._hasher is not None and self._map_end > self._hashed:
            offset = self._hashed - self._map_start
            self._hasher.submit(self._view[offset:])
            self._hashed = self._map_end

    def _unmap(self) -> None:
        if self._hasher is not None:
            self._hasher.wait()
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a slice: GC unmaps
                self._map.close()
            self._map = None

    def read(self, size: int) -> memoryview:
        if self._position + size > self._end:
            raise MalformedEnvelope("truncated: the envelope ends inside a chunk")
        if self._view is None or self._position + size > self._map_end:
            self._remap(self._position)
        assert self._view is not None  # noqa: S101 - narrowing for type checkers
        offset = self._position - self._map_start
        self._position += size
        return self._view[offset : offset + size]

    def finish(self) -> None:
        self._unmap()
        if os.fstat(self._fd).st_size != self._end:
            raise MalformedEnvelope("the envelope file changed size while being opened")
        self._stream.seek(self._end)

    def close(self) -> None:
        try:
            self._unmap()
        finally:
            if self._hasher is not None:
                self._hasher.close()


def _advise_window(window: mmap.mmap, *, populate: bool) -> None:
    """Huge pages for what the window reads from the disk: a part of the file not yet in the
    page cache is read into 2 MiB pages, each mapped with one page-table entry instead of
    512 (the blob store writes past the page cache, so an envelope is read from the disk
    once). With a hashing thread, the page tables are filled at once (`populate`): two
    threads faulting the same mapping page by page ran mostly one at a time. Advice only:
    a kernel without it maps 4 KiB pages, faulted on first touch."""
    for advice, wanted in ((_MADV_HUGEPAGE, True), (_MADV_POPULATE_READ, populate)):
        if advice is not None and wanted:
            with contextlib.suppress(OSError):
                window.madvise(advice)


def _regular_file_fd(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, AttributeError, ValueError):
        return None


def decrypt_envelope(
    stream: BinaryIO,
    tender_private_key: X25519PrivateKey,
    sink_for: Callable[[str], Writable],
    *,
    expected_tender: str | None = None,
    expected_bidder: str | None = None,
    expected_sha256: str | None = None,
    use_mmap: bool = True,
    expected_lot: str | AnyLot | None = ANY_LOT,
) -> DecryptResult:
    """Verify and decrypt an envelope, streaming each part to ``sink_for(part_name)``.

    ``sink_for`` is called once per part, in header order (also for empty parts), and the
    part's plaintext is written to what it returns (``write`` must consume the data before
    returning: the buffer is reused).  Only authenticated chunks are written, but the
    envelope is verified as a whole (no chunk missing, no trailing data, hash) only when this
    function returns: on any exception the caller MUST discard everything the sinks
    received.  :func:`open_envelope` does that for files.

    ``expected_sha256`` (hex) checks the envelope's SHA-256 against its receipt.  It also
    tells whose fault a failure is: if a seekable envelope fails in any way and its hash is
    not the receipted one, :class:`EnvelopeHashMismatch` is raised (the stored bytes are not
    what the bidder submitted: a platform or storage fault), chained to the original error;
    any other error then means the receipted envelope itself is bad (the bidder's fault).

    A regular file is read through a sliding 16 MiB memory map unless ``use_mmap`` is false;
    as with any memory map, truncating the file while it is being opened kills the process
    with SIGBUS, so pass ``use_mmap=False`` for files that others may still be writing.
    ``expected_lot`` is checked with the tender and bidder, before any key is used.
    Raises :class:`MalformedEnvelope`, :class:`WrongTender`, :class:`WrongBidder`,
    :class:`WrongLot`, :class:`DecryptionError`, :class:`IntegrityError`
    (:class:`EnvelopeHashMismatch`).
    """
    if expected_sha256 is not None and not is_hex_sha256(expected_sha256.lower()):
        raise ValueError("expected_sha256 must be 64 hexadecimal digits")
    start = None
    with contextlib.suppress(OSError, AttributeError, ValueError):
        start = stream.tell() if stream.seekable() else None
    try:
        return _decrypt_envelope(
            stream,
            tender_private_key,
            sink_for,
            expected_tender,
            expected_bidder,
            expected_sha256,
            use_mmap,
            expected_lot,
        )
    except EnvelopeHashMismatch:
        raise
    except EnvelopeError as exc:
        if expected_sha256 is None or start is None:
            raise
        stream.seek(start)
        actual = _sha256_of(stream)
        if hmac.compare_digest(actual, expected_sha256.lower()):
            raise
        raise EnvelopeHashMismatch(
            f"envelope SHA-256 is {actual}, expected {expected_sha256} (its receipt): the "
            f"stored envelope is not the one receipted ({exc})"
        ) from exc


def _sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    view = memoryview(bytearray(_COPY_BLOCK))
    while count := _readinto(stream, view):
        digest.update(view[:count])
    return digest.hexdigest()


def _decrypt_envelope(
    stream: BinaryIO,
    tender_private_key: X25519PrivateKey,
    sink_for: Callable[[str], Writable],
    expected_tender: str | None,
    expected_bidder: str | None,
    expected_sha256: str | None,
    use_mmap: bool,
    expected_lot: str | AnyLot | None,
) -> DecryptResult:
    digest = hashlib.sha256() if expected_sha256 is not None else None
    header = read_header(stream)
    _check_expected(header, expected_tender, expected_bidder, expected_lot)
    remaining = _seekable_remaining(stream)
    if remaining is not None:
        _check_size(header, header.body_offset + remaining)
    if digest is not None:
        digest.update(header.prefix + len(header.raw).to_bytes(LENGTH_SIZE, "big") + header.raw)
    key = _unseal_content_key(header, tender_private_key)
    fd = _regular_file_fd(stream) if use_mmap and remaining is not None else None
    chunks: _StreamChunks | _MappedChunks
    if fd is not None and remaining is not None:
        start = stream.tell()
        # The mapped bytes are hashed in a second thread, in parallel with their decryption.
        hasher = _WindowHasher(digest) if digest is not None else None
        chunks = _MappedChunks(stream, fd, start, start + remaining, header.chunk_size, hasher)
        chunk_digest = None
    else:
        chunks = _StreamChunks(stream, header.chunk_size)
        chunk_digest = digest
    try:
        _decrypt_content(
            chunks,
            header,
            bytes(key),
            _PartWriter(header, sink_for),
            chunk_digest,
        )
        chunks.finish()
    finally:
        wipe(key)
        if isinstance(chunks, _MappedChunks):
            chunks.close()
    sha256 = None
    if digest is not None:
        sha256 = digest.hexdigest()
        if not hmac.compare_digest(sha256, expected_sha256.lower()):  # type: ignore[union-attr]
            raise EnvelopeHashMismatch(
                f"envelope SHA-256 is {sha256}, expected {expected_sha256} (its receipt)"
            )
    return DecryptResult(header=header, sha256=sha256)


def _decrypt_content(
    chunks: _StreamChunks | _MappedChunks,
    header: EnvelopeHeader,
    key: bytes,
    writer: _PartWriter,
    digest: Any,
) -> None:
    """Decrypts the chunks in order, writing only authenticated plaintext.

    ``AESGCM.decrypt_into`` is the cheapest per chunk: one call, no context object, no tag
    copy (it was ``Cipher(...).decryptor()``, ``authenticate_additional_data``,
    ``update_into`` and ``finalize_with_tag`` with a copied tag).
    """
    aad = header.sha256
    count = header.chunk_count
    plain_buffer = memoryview(bytearray(header.chunk_size + TAG_SIZE + 15))
    aead = AESGCM(key)
    # One view per plaintext size (every chunk but the last is full): no slice per chunk.
    full_view = plain_buffer[: header.chunk_size]
    last_view = plain_buffer[: header.chunk_plain_size(count - 1)]
    read, write, pack = chunks.read, writer.write, _NONCE.pack
    for index in range(count):
        last = index == count - 1
        plain = last_view if last else full_view
        sealed = read(len(plain) + TAG_SIZE)
        try:
            if digest is not None:
                digest.update(sealed)
            aead.decrypt_into(pack(index, last), sealed, aad, plain)
        except InvalidTag:
            raise IntegrityError(
                f"chunk {index} of {count} fails authentication: the content was altered, "
                f"reordered, truncated, or does not belong to this header"
            ) from None
        finally:
            sealed.release()  # lets the memory map slide
        # Only authenticated plaintext leaves this function.
        write(plain)
    writer.close()


def open_envelope(
    stream: BinaryIO,
    tender_private_key: X25519PrivateKey,
    out_dir: str | os.PathLike[str],
    *,
    expected_tender: str | None = None,
    expected_bidder: str | None = None,
    expected_sha256: str | None = None,
    fsync: bool = True,
    use_mmap: bool = True,
    expected_lot: str | AnyLot | None = ANY_LOT,
) -> OpenedEnvelope:
    """Verify and decrypt an envelope into ``out_dir``, all or nothing.

    Writes one file per part (``commercial.json``, ``technical``, ``qualification-N``, see
    :func:`part_filename`), mode 0600, into a fresh temporary directory next to ``out_dir``;
    only when every check has passed is it renamed to ``out_dir`` (which must not exist, or be
    an empty directory).  On any failure the temporary directory is removed and ``out_dir`` is
    left untouched.  Errors as for :func:`decrypt_envelope`, plus FileExistsError.
    """
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.opening-", dir=target.parent))
    try:
        files: dict[str, Path] = {}
        with contextlib.ExitStack() as stack:

            def sink_for(name: str) -> Writable:
                path = temp / part_filename(name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                sink = stack.enter_context(open(fd, "wb", buffering=0))
                files[name] = target / path.name
                return sink

            result = decrypt_envelope(
                stream,
                tender_private_key,
                sink_for,
                expected_tender=expected_tender,
                expected_bidder=expected_bidder,
                expected_sha256=expected_sha256,
                use_mmap=use_mmap,
                expected_lot=expected_lot,
            )
        if fsync:
            _fsync_tree(temp)
        os.rename(temp, target)
        if fsync:
            _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return OpenedEnvelope(header=result.header, directory=target, files=files, sha256=result.sha256)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
