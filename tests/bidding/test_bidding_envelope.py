"""Envelope format: round trips, tampering, framing, and conformance with FORMAT.md."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import mmap
import multiprocessing
import os
import random
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidding import envelope as env
from bidding.errors import (
    DecryptionError,
    EnvelopeError,
    EnvelopeHashMismatch,
    IntegrityError,
    MalformedEnvelope,
    WrongBidder,
    WrongLot,
    WrongTender,
)

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
VECTOR = Path(__file__).with_name("envelope_v1_vector.json")


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def seal_bytes(
    key: X25519PrivateKey,
    *,
    tender: str = "T-2025-001",
    bidder: str = "B-42",
    commercial: bytes = b'{"price":"1000.00"}',
    technical: bytes | None = b"technical proposal",
    qualifications: tuple[bytes, ...] = (),
    chunk_size: int = 64,
) -> tuple[bytes, env.SealResult]:
    parts = env.bid_parts(
        commercial,
        io.BytesIO(technical) if technical is not None else None,
        [io.BytesIO(q) for q in qualifications],
    )
    out = io.BytesIO()
    result = env.seal(out, key.public_key(), tender, bidder, parts, chunk_size=chunk_size)
    return out.getvalue(), result


def open_bytes(data: bytes, key: X25519PrivateKey, stream: object = None, **kwargs) -> dict:
    sinks: dict[str, io.BytesIO] = {}

    def sink_for(name: str) -> io.BytesIO:
        sinks[name] = io.BytesIO()
        return sinks[name]

    env.decrypt_envelope(stream or io.BytesIO(data), key, sink_for, **kwargs)
    return {name: sink.getvalue() for name, sink in sinks.items()}


class Unseekable(io.RawIOBase):
    """A pipe-like stream: no seek, no size; returns at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 1 << 30) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer)[: self._step]
        return self._data.readinto(view)


def split_envelope(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(prefix + length, header bytes, body) of an envelope."""
    length = int.from_bytes(data[8:12], "big")
    return data[:12], data[12 : 12 + length], data[12 + length :]


def with_header(data: bytes, header_obj: dict) -> bytes:
    raw = canonical(header_obj)
    _, _, body = split_envelope(data)
    return b"FAIRBID\x01" + len(raw).to_bytes(4, "big") + raw + body


def header_obj(data: bytes) -> dict:
    return json.loads(split_envelope(data)[1])


# --- round trips --------------------------------------------------------------------------

SIZES = st.one_of(
    st.integers(0, 300),
    st.sampled_from([0, 1, 63, 64, 65, 127, 128, 129, 192, 256]),
)


@PROPERTY
@given(
    chunk_size=st.sampled_from([64, 128, 256]),
    commercial=st.binary(max_size=200),
    technical=st.one_of(st.none(), SIZES),
    qualifications=st.lists(SIZES, max_size=3),
    seed=st.integers(0, 2**32),
)
def test_round_trip_random_parts(
    tender_key, chunk_size, commercial, technical, qualifications, seed
) -> None:
    rng = random.Random(seed)
    technical_bytes = rng.randbytes(technical) if technical is not None else None
    quals = tuple(rng.randbytes(size) for size in qualifications)
    data, result = seal_bytes(
        tender_key,
        commercial=commercial,
        technical=technical_bytes,
        qualifications=quals,
        chunk_size=chunk_size,
    )
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    header = env.inspect_header(io.BytesIO(data), expected_tender="T-2025-001")
    assert header.envelope_size == len(data)

    expected = {"commercial": commercial}
    if technical_bytes is not None:
        expected["technical"] = technical_bytes
    expected.update({f"qualification-{i}": q for i, q in enumerate(quals, start=1)})
    assert open_bytes(data, tender_key) == expected
    # Also through a non-seekable stream returning short reads.
    assert open_bytes(data, tender_key, Unseekable(data, step=37)) == expected


@pytest.mark.parametrize("total", [0, 1, 63, 64, 65, 128, 64 * 5, 64 * 5 + 1])
def test_chunk_count_and_exact_multiples(tender_key, total: int) -> None:
    # commercial part of 0 bytes, technical carries the whole content
    data, result = seal_bytes(tender_key, commercial=b"", technical=b"x" * total)
    header = result.header
    assert header.chunk_count == max(1, -(-total // 64))
    assert len(data) == header.body_offset + total + 16 * header.chunk_count
    assert open_bytes(data, tender_key) == {"commercial": b"", "technical": b"x" * total}


def test_real_chunk_size_through_a_file(tender_key, tmp_path: Path) -> None:
    """1 MiB chunks, content of exactly 2 MiB and of 2 MiB + 1, via files (memory map)."""
    rng = random.Random(7)
    for extra in (0, 1):
        technical = rng.randbytes((2 << 20) + extra - 20)
        data, result = seal_bytes(
            tender_key,
            commercial=b'{"price":"1"}' + b" " * 7,
            technical=technical,
            qualifications=(b"q",),
            chunk_size=env.CHUNK_SIZE,
        )
        assert result.header.chunk_size == 1 << 20
        assert result.header.chunk_count == 3  # 2 MiB + 1 (+extra) bytes
        path = tmp_path / f"bid-{extra}.env"
        path.write_bytes(data)
        with open(path, "rb", buffering=0) as handle:
            opened = env.open_envelope(
                handle, tender_key, tmp_path / f"out-{extra}", expected_sha256=result.sha256
            )
        assert opened.files["technical"].read_bytes() == technical
        assert opened.files["qualification-1"].read_bytes() == b"q"
        assert (tmp_path / f"out-{extra}" / "commercial.json").exists()
        # The same with plain reads instead of the memory map, through a buffered file.
        with open(path, "rb") as handle:
            parts = open_bytes(data, tender_key, handle, use_mmap=False)
        assert parts["technical"] == technical


def test_mapped_reader_slides_over_many_windows(tender_key, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(env._MappedChunks, "WINDOW", 4096)
    monkeypatch.setattr(env._MappedChunks, "ALIGN", mmap.ALLOCATIONGRANULARITY)
    technical = random.Random(3).randbytes(50_000)
    data, _ = seal_bytes(tender_key, technical=technical, chunk_size=1024)
    path = tmp_path / "bid.env"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        assert open_bytes(data, tender_key, handle)["technical"] == technical
        assert handle.read() == b""  # left at the end


def test_mapped_reader_hashes_every_window_in_parallel(
    tender_key, tmp_path: Path, monkeypatch
) -> None:
    """The receipt hash computed by the hashing thread over sliding windows is the file's."""
    monkeypatch.setattr(env._MappedChunks, "WINDOW", 4096)
    monkeypatch.setattr(env._MappedChunks, "ALIGN", mmap.ALLOCATIONGRANULARITY)
    technical = random.Random(5).randbytes(50_000)
    data, sealed = seal_bytes(tender_key, technical=technical, chunk_size=1024)
    path = tmp_path / "bid.env"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        result = env.decrypt_envelope(
            handle, tender_key, lambda name: io.BytesIO(), expected_sha256=sealed.sha256
        )
    assert result.sha256 == hashlib.sha256(data).hexdigest() == sealed.sha256
    # A wrong receipt hash on intact bytes: the parallel hash catches it.
    other = hashlib.sha256(b"another envelope").hexdigest()
    with open(path, "rb") as handle, pytest.raises(env.EnvelopeHashMismatch):
        env.decrypt_envelope(handle, tender_key, lambda name: io.BytesIO(), expected_sha256=other)
    # An altered byte in a late window: the chunk fails, and the stored bytes are not the
    # receipted ones.
    altered = bytearray(data)
    altered[-3000] ^= 1
    path.write_bytes(altered)
    with open(path, "rb") as handle, pytest.raises(env.EnvelopeHashMismatch):
        env.decrypt_envelope(
            handle, tender_key, lambda name: io.BytesIO(), expected_sha256=sealed.sha256
        )


def test_mapped_windows_start_on_huge_page_boundaries(
    tender_key, tmp_path: Path, monkeypatch
) -> None:
    """Every window is mapped from a 2 MiB boundary of the file (so that a 2 MiB page-cache
    folio is mapped whole), and the chunks straddling window ends still open intact."""
    monkeypatch.setattr(env._MappedChunks, "WINDOW", 3 << 20)
    offsets = []
    real_mmap = mmap.mmap

    def recording_mmap(fd, length, **kwargs):
        offsets.append((kwargs.get("offset", 0), length))
        return real_mmap(fd, length, **kwargs)

    monkeypatch.setattr(env.mmap, "mmap", recording_mmap)
    technical = random.Random(11).randbytes(9 << 20)
    data, sealed = seal_bytes(tender_key, technical=technical, chunk_size=1 << 18)
    path = tmp_path / "bid.env"
    path.write_bytes(data)
    for expected in (None, sealed.sha256):
        offsets.clear()
        sinks: dict[str, io.BytesIO] = {}
        with open(path, "rb") as handle:
            env.decrypt_envelope(
                handle,
                tender_key,
                lambda name, sinks=sinks: sinks.setdefault(name, io.BytesIO()),
                expected_sha256=expected,
            )
        assert sinks["technical"].getvalue() == technical
        assert len(offsets) >= 3
        assert all(offset % (2 << 20) == 0 for offset, _ in offsets)
        # The windows cover the whole file, in order.
        assert offsets[0][0] == 0
        assert offsets[-1][0] + offsets[-1][1] == len(data)


def _open_with_hash_in_child(path: str, tender_key, expected: str) -> None:
    with open(path, "rb") as handle:
        env.decrypt_envelope(
            handle, tender_key, lambda name: io.BytesIO(), expected_sha256=expected
        )


def test_a_forked_process_hashes_with_a_thread_of_its_own(tender_key, tmp_path: Path) -> None:
    """The hashing thread is started once per process; a child forked after an opening (an RQ
    work horse) starts its own instead of waiting forever for its parent's."""
    data, sealed = seal_bytes(tender_key, technical=random.Random(13).randbytes(300_000))
    path = tmp_path / "bid.env"
    path.write_bytes(data)
    _open_with_hash_in_child(str(path), tender_key, sealed.sha256)  # the parent's thread
    child = multiprocessing.get_context("fork").Process(
        target=_open_with_hash_in_child, args=(str(path), tender_key, sealed.sha256)
    )
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0


def test_open_envelope_writes_files_and_modes(tender_key, tmp_path: Path) -> None:
    data, _ = seal_bytes(tender_key, qualifications=(b"one", b""))
    target = tmp_path / "opened"
    opened = env.open_envelope(io.BytesIO(data), tender_key, target)
    assert sorted(p.name for p in target.iterdir()) == [
        "commercial.json",
        "qualification-1",
        "qualification-2",
        "technical",
    ]
    assert (target / "commercial.json").read_bytes() == b'{"price":"1000.00"}'
    assert (target / "qualification-2").read_bytes() == b""
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in target.iterdir())
    assert opened.header.bidder == "B-42"
    assert opened.sha256 is None
    # An existing empty directory is fine; a non-empty one is refused.
    empty = tmp_path / "empty"
    empty.mkdir()
    env.open_envelope(io.BytesIO(data), tender_key, empty)
    with pytest.raises(FileExistsError):
        env.open_envelope(io.BytesIO(data), tender_key, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "opened"]


class FailingStream(io.RawIOBase):
    """A file whose reads fail with an I/O error after ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._data.tell() >= self._limit:
            raise OSError("simulated I/O error")
        view = memoryview(buffer)[: self._limit - self._data.tell()]
        return self._data.readinto(view)


def test_io_errors_leave_nothing_behind(tender_key, tmp_path: Path) -> None:
    data, _ = seal_bytes(tender_key, technical=os.urandom(1000))
    with pytest.raises(OSError, match="simulated"):
        env.open_envelope(FailingStream(data, len(data) - 50), tender_key, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []

    def failing_sink(name: str) -> io.BytesIO:
        if name == "technical":
            raise OSError("disk full")
        return io.BytesIO()

    with pytest.raises(OSError, match="disk full"):
        env.decrypt_envelope(io.BytesIO(data), tender_key, failing_sink)


# --- tampering ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_envelope(tender_key) -> bytes:
    data, _ = seal_bytes(
        tender_key,
        commercial=b'{"price":"12.50"}',
        technical=bytes(range(100)),
        qualifications=(b"q" * 30,),
    )
    return data


def test_every_single_bit_flip_is_refused(tender_key, small_envelope: bytes) -> None:
    """Exhaustive: each bit of a small envelope, flipped, is refused with the right error."""
    data = small_envelope
    header_end = 12 + int.from_bytes(data[8:12], "big")
    for position in range(len(data)):
        for bit in range(8):
            tampered = bytearray(data)
            tampered[position] ^= 1 << bit
            with pytest.raises(EnvelopeError) as caught:
                open_bytes(bytes(tampered), tender_key)
            if position < 12:
                assert isinstance(caught.value, MalformedEnvelope), position
            elif position < header_end:
                assert isinstance(caught.value, MalformedEnvelope | DecryptionError), position
            else:
                assert isinstance(caught.value, IntegrityError), position


@settings(max_examples=25, deadline=None, database=None)
@given(position=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_bit_flip_leaves_nothing_on_disk(
    tender_key, small_envelope: bytes, tmp_path_factory, position: int, bit: int
) -> None:
    base = tmp_path_factory.mktemp("flip")
    tampered = bytearray(small_envelope)
    tampered[position % len(tampered)] ^= 1 << bit
    path = base / "bid.env"
    path.write_bytes(bytes(tampered))
    with open(path, "rb") as handle, pytest.raises(EnvelopeError):
        env.open_envelope(handle, tender_key, base / "out")
    assert sorted(p.name for p in base.iterdir()) == ["bid.env"]


def test_every_truncation_is_refused(tender_key, small_envelope: bytes) -> None:
    data = small_envelope
    for length in range(len(data)):
        with pytest.raises(MalformedEnvelope):
            open_bytes(data[:length], tender_key)
        with pytest.raises(MalformedEnvelope):
            open_bytes(data[:length], tender_key, Unseekable(data[:length], step=50))
        with pytest.raises(MalformedEnvelope):
            env.inspect_header(io.BytesIO(data[:length]))


def test_trailing_data_is_refused(tender_key, small_envelope: bytes) -> None:
    for extra in (b"\x00", small_envelope[-16:]):
        with pytest.raises(MalformedEnvelope, match="trailing"):
            open_bytes(small_envelope + extra, tender_key)
        with pytest.raises(MalformedEnvelope, match="trailing"):
            open_bytes(small_envelope + extra, tender_key, Unseekable(small_envelope + extra))
        with pytest.raises(MalformedEnvelope, match="trailing"):
            env.inspect_header(io.BytesIO(small_envelope + extra))


def chunks_of(data: bytes, chunk: int = 64) -> tuple[bytes, list[bytes]]:
    head, header, body = split_envelope(data)
    size = chunk + 16
    return head + header, [body[i : i + size] for i in range(0, len(body), size)]


def test_reordered_duplicated_and_dropped_chunks(tender_key) -> None:
    data, _ = seal_bytes(tender_key, commercial=b"", technical=os.urandom(256))
    prefix, chunks = chunks_of(data)
    assert len(chunks) == 4 and {len(c) for c in chunks} == {80}
    swapped = [chunks[1], chunks[0], chunks[2], chunks[3]]
    last_first = [chunks[3], chunks[1], chunks[2], chunks[0]]
    duplicated = [chunks[0], chunks[0], chunks[2], chunks[3]]
    for arrangement in (swapped, last_first, duplicated):
        with pytest.raises(IntegrityError):
            open_bytes(prefix + b"".join(arrangement), tender_key)
    with pytest.raises(MalformedEnvelope):  # a chunk missing: the framing is wrong
        open_bytes(prefix + b"".join(chunks[:3]), tender_key)
    with pytest.raises(MalformedEnvelope):  # a chunk repeated at the end
        open_bytes(prefix + b"".join([*chunks, chunks[3]]), tender_key)


def test_chunks_cannot_move_between_envelopes(tender_key) -> None:
    a, _ = seal_bytes(tender_key, commercial=b"", technical=os.urandom(256))
    b, _ = seal_bytes(tender_key, commercial=b"", technical=os.urandom(256))
    prefix_a, chunks_a = chunks_of(a)
    _, chunks_b = chunks_of(b)
    mixed = [chunks_a[0], chunks_b[1], chunks_a[2], chunks_a[3]]
    with pytest.raises(IntegrityError):
        open_bytes(prefix_a + b"".join(mixed), tender_key)
    # Header of one envelope on the body of another (same tender, same sizes).
    with pytest.raises(IntegrityError):
        open_bytes(prefix_a + b"".join(chunks_b), tender_key)


def test_header_swapped_with_different_sizes(tender_key) -> None:
    a, _ = seal_bytes(tender_key, technical=b"a" * 100)
    b, _ = seal_bytes(tender_key, technical=b"b" * 200)
    head_a, header_a, _ = split_envelope(a)
    _, _, body_b = split_envelope(b)
    with pytest.raises(MalformedEnvelope):
        open_bytes(head_a + header_a + body_b, tender_key)


def test_truncation_with_a_rewritten_header_is_refused(tender_key) -> None:
    data, _ = seal_bytes(tender_key, commercial=b"", technical=os.urandom(256))
    obj = header_obj(data)
    obj["parts"][1]["size"] = 192  # claim one chunk less ...
    forged = with_header(data, obj)
    forged = forged[:-80]  # ... and drop the last chunk
    with pytest.raises(DecryptionError):
        open_bytes(forged, tender_key)


@pytest.mark.parametrize(("field", "error"), [("tender", WrongTender), ("bidder", WrongBidder)])
def test_relabelled_envelope(tender_key, small_envelope: bytes, field: str, error) -> None:
    obj = header_obj(small_envelope)
    obj[field] = "X-999"
    relabelled = with_header(small_envelope, obj)
    env.inspect_header(io.BytesIO(relabelled))  # well-formed, so the server cannot tell ...
    expected = {"expected_tender": "T-2025-001", "expected_bidder": "B-42"}
    with pytest.raises(error):  # ... unless it checks against the registration
        env.inspect_header(io.BytesIO(relabelled), **expected)
    with pytest.raises(error):
        open_bytes(relabelled, tender_key, **expected)
    with pytest.raises(DecryptionError):  # and the key does not unseal under the new label
        open_bytes(relabelled, tender_key)


def test_wrong_tender_key(small_envelope: bytes, other_tender_key) -> None:
    with pytest.raises(DecryptionError):
        open_bytes(small_envelope, other_tender_key)


def test_expected_sha256(tender_key) -> None:
    data, result = seal_bytes(tender_key)
    assert result.sha256 is not None
    open_bytes(data, tender_key, expected_sha256=result.sha256)
    open_bytes(data, tender_key, expected_sha256=result.sha256.upper())
    with pytest.raises(EnvelopeHashMismatch):
        open_bytes(data, tender_key, expected_sha256="0" * 64)
    info = env.inspect_envelope(io.BytesIO(data))
    assert (info.sha256, info.size) == (result.sha256, len(data))


def test_receipt_hash_tells_whose_fault_a_failure_is(tender_key, tmp_path: Path) -> None:
    data, result = seal_bytes(tender_key, technical=os.urandom(300))
    corrupted = bytearray(data)
    corrupted[-20] ^= 0x40
    # Stored bytes changed after the receipt: the platform's (or its storage's) fault.
    path = tmp_path / "stored.env"
    path.write_bytes(bytes(corrupted))
    with open(path, "rb") as handle, pytest.raises(EnvelopeHashMismatch) as caught:
        open_bytes(b"", tender_key, handle, expected_sha256=result.sha256)
    assert isinstance(caught.value.__cause__, IntegrityError)
    with pytest.raises(EnvelopeHashMismatch):  # another bidder's file stored in its place
        other, _ = seal_bytes(tender_key, bidder="B-7")
        open_bytes(other, tender_key, expected_bidder="B-42", expected_sha256=result.sha256)
    # The bidder submitted (and got a receipt for) a bad envelope: the bidder's fault.
    receipted = hashlib.sha256(bytes(corrupted)).hexdigest()
    with pytest.raises(IntegrityError) as caught:
        open_bytes(bytes(corrupted), tender_key, expected_sha256=receipted)
    assert not isinstance(caught.value, EnvelopeHashMismatch)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        open_bytes(data, tender_key, expected_sha256="abc")


# --- header validation --------------------------------------------------------------------


def _mutations(obj: dict) -> list[dict]:
    def changed(**updates) -> dict:
        return {**json.loads(json.dumps(obj)), **updates}

    parts = obj["parts"]
    return [
        changed(version=2),
        changed(version=True),
        changed(format="other"),
        changed(chunk_size=100),
        changed(chunk_size=32),
        changed(chunk_size=1 << 25),
        changed(suite={"aead": 1, "kdf": 1, "kem": 32}),
        changed(tender="has space"),
        changed(tender=""),
        changed(bidder="é"),
        changed(parts=[parts[1], parts[0]]),
        changed(parts=[parts[0], {"name": "../etc/passwd", "size": 1}]),
        changed(parts=[parts[0], parts[1], {"name": "qualification-2", "size": 0}]),
        changed(parts=[parts[0], {"name": "technical", "size": -1}]),
        changed(parts=[parts[0], {"name": "technical", "size": True}]),
        changed(parts=[{"name": "commercial", "size": 1, "x": 1}]),
        changed(parts=[]),
        changed(extra=1),
        changed(key={"enc": obj["key"]["enc"]}),
        changed(key={"enc": "AAAA", "sealed": obj["key"]["sealed"]}),
        {k: v for k, v in obj.items() if k != "tender"},
    ]


def test_malformed_headers_are_refused(small_envelope: bytes) -> None:
    obj = header_obj(small_envelope)
    for mutated in _mutations(obj):
        with pytest.raises(MalformedEnvelope):
            env.inspect_header(io.BytesIO(with_header(small_envelope, mutated)))


def test_non_canonical_headers_are_refused(small_envelope: bytes) -> None:
    obj = header_obj(small_envelope)
    _, header, body = split_envelope(small_envelope)
    variants = [
        json.dumps(obj, sort_keys=True).encode(),  # whitespace
        json.dumps(dict(reversed(obj.items())), separators=(",", ":")).encode(),  # order
        header.replace(b'"version":1', b'"version":1.0'),
        header.replace(b'"version":1', b'"version":1,"version":1'),
        header[:-1] + b',"bidder":"B-42"}',
        b"\xff" + header[1:],
        b"[]",
    ]
    for raw in variants:
        data = b"FAIRBID\x01" + len(raw).to_bytes(4, "big") + raw + body
        with pytest.raises(MalformedEnvelope):
            env.inspect_header(io.BytesIO(data))


def test_prefix_errors() -> None:
    with pytest.raises(MalformedEnvelope, match="magic"):
        env.inspect_header(io.BytesIO(b"NOTFAIRB" + bytes(100)))
    with pytest.raises(MalformedEnvelope, match="version 3"):
        env.inspect_header(io.BytesIO(b"FAIRBID\x03" + bytes(100)))
    with pytest.raises(MalformedEnvelope, match="header length"):
        env.inspect_header(io.BytesIO(b"FAIRBID\x01" + (10**7).to_bytes(4, "big")))
    with pytest.raises(MalformedEnvelope, match="too short"):
        env.inspect_header(io.BytesIO(b"FAIR"))


def test_inspect_header_restores_position_and_reads_pipes(small_envelope: bytes) -> None:
    stream = io.BytesIO(small_envelope)
    header = env.inspect_header(stream)
    assert stream.tell() == 0
    assert header.part_names() == ["commercial", "technical", "qualification-1"]
    assert env.inspect_header(Unseekable(small_envelope, step=9)).raw == header.raw


# --- sealing arguments and the commercial part --------------------------------------------


def test_seal_checks_its_arguments(tender_key) -> None:
    public = tender_key.public_key()

    def parts(*names: str) -> list[env.PartSource]:
        return [env.PartSource(name, io.BytesIO(b"x")) for name in names]

    with pytest.raises(ValueError, match="first part"):
        env.seal(io.BytesIO(), public, "T", "B", parts("technical"))
    with pytest.raises(ValueError, match="unexpected part"):
        env.seal(io.BytesIO(), public, "T", "B", parts("commercial", "qualification-2"))
    with pytest.raises(ValueError, match="tender id"):
        env.seal(io.BytesIO(), public, "T 1", "B", parts("commercial"))
    with pytest.raises(ValueError, match="chunk_size"):
        env.seal(io.BytesIO(), public, "T", "B", parts("commercial"), chunk_size=1000)
    with pytest.raises(TypeError):
        env.seal(io.BytesIO(), tender_key, "T", "B", parts("commercial"))  # type: ignore[arg-type]
    short = [env.PartSource("commercial", io.BytesIO(b"abc"), size=5)]
    with pytest.raises(ValueError, match="ended before"):
        env.seal(io.BytesIO(), public, "T", "B", short)
    long = [env.PartSource("commercial", io.BytesIO(b"abcdef"), size=5)]
    with pytest.raises(ValueError, match="longer"):
        env.seal(io.BytesIO(), public, "T", "B", long)
    pipe = [env.PartSource("commercial", Unseekable(b"abc"))]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-seekable"):
        env.seal(io.BytesIO(), public, "T", "B", pipe)
    sized_pipe = [env.PartSource("commercial", Unseekable(b"abc"), size=3)]  # type: ignore[arg-type]
    out = io.BytesIO()
    env.seal(out, public, "T", "B", sized_pipe)
    assert open_bytes(out.getvalue(), tender_key) == {"commercial": b"abc"}


def test_commercial_part_encoding() -> None:
    encoded = env.encode_commercial({"price": Decimal("1234567.89"), "days": 30, "note": "工期"})
    assert encoded == '{"days":30,"note":"工期","price":"1234567.89"}'.encode()
    assert env.decode_commercial(encoded)["price"] == "1234567.89"
    assert env.encode_commercial({"price": Decimal("1E+3")}) == b'{"price":"1000"}'
    with pytest.raises(ValueError, match="float"):
        env.encode_commercial({"price": "1", "rate": 0.5})
    with pytest.raises(ValueError, match="price"):
        env.encode_commercial({"price": "1e3"})
    with pytest.raises(ValueError, match="price"):
        env.encode_commercial({"price": 1000})
    with pytest.raises(ValueError):
        env.decode_commercial(b'{"price": 12.5}')
    with pytest.raises(ValueError):
        env.decode_commercial(b'{"a": 1, "a": 2}')
    with pytest.raises(ValueError):
        env.decode_commercial(b"[1]")
    with pytest.raises(ValueError):
        env.decode_commercial(b'{"price": NaN}')


# --- conformance with FORMAT.md (independent reader and writer) ----------------------------


def reference_open(data: bytes, private_key: X25519PrivateKey) -> dict[str, bytes]:
    """Decrypt an envelope following FORMAT.md step by step, without the library."""
    assert data[:7] == b"FAIRBID" and data[7] in (1, 2)
    length = int.from_bytes(data[8:12], "big")
    header = data[12 : 12 + length]
    obj = json.loads(header)
    assert canonical(obj) == header
    assert obj["version"] == data[7] and ("lot" in obj) == (data[7] == 2)
    core = {k: v for k, v in obj.items() if k != "key"}
    info = b"fairbid-envelope-v1\x00" + hashlib.sha256(canonical(core)).digest()
    sealed = base64.b64decode(obj["key"]["enc"]) + base64.b64decode(obj["key"]["sealed"])
    aead = AESGCM(SUITE.decrypt(sealed, private_key, info=info))
    aad = hashlib.sha256(header).digest()
    sizes = [part["size"] for part in obj["parts"]]
    total, chunk = sum(sizes), obj["chunk_size"]
    count = max(1, -(-total // chunk))
    offset, content = 12 + length, b""
    for index in range(count):
        plain = chunk if index < count - 1 else total - chunk * (count - 1)
        last = b"\x01" if index == count - 1 else b"\x00"
        nonce = bytes(7) + index.to_bytes(4, "big") + last
        content += aead.decrypt(nonce, data[offset : offset + plain + 16], aad)
        offset += plain + 16
    assert offset == len(data)
    parts, position = {}, 0
    for part in obj["parts"]:
        parts[part["name"]] = content[position : position + part["size"]]
        position += part["size"]
    return parts


def reference_seal(
    public_key, tender: str, bidder: str, parts: dict[str, bytes], chunk: int, lot: str = ""
) -> bytes:
    """Write an envelope following FORMAT.md, without the library (what the browser does);
    with ``lot``, a version 2 envelope for that lot."""
    core: dict = {
        "bidder": bidder,
        "chunk_size": chunk,
        "format": "fairbid-envelope",
        "parts": [{"name": name, "size": len(value)} for name, value in parts.items()],
        "suite": {"aead": 2, "kdf": 1, "kem": 32},
        "tender": tender,
        "version": 2 if lot else 1,
    }
    if lot:
        core["lot"] = lot
    key = os.urandom(32)
    info = b"fairbid-envelope-v1\x00" + hashlib.sha256(canonical(core)).digest()
    sealed = SUITE.encrypt(key, public_key, info=info)
    header = canonical(
        {
            **core,
            "key": {
                "enc": base64.b64encode(sealed[:32]).decode(),
                "sealed": base64.b64encode(sealed[32:]).decode(),
            },
        }
    )
    aad = hashlib.sha256(header).digest()
    content = b"".join(parts.values())
    count = max(1, -(-len(content) // chunk))
    out = [b"FAIRBID" + bytes([core["version"]]), len(header).to_bytes(4, "big"), header]
    for index in range(count):
        last = b"\x01" if index == count - 1 else b"\x00"
        nonce = bytes(7) + index.to_bytes(4, "big") + last
        out.append(AESGCM(key).encrypt(nonce, content[index * chunk : (index + 1) * chunk], aad))
    return b"".join(out)


@PROPERTY
@given(
    commercial=st.binary(max_size=100),
    technical=st.binary(max_size=400),
    chunk=st.sampled_from([64, 128]),
)
def test_format_md_reader_and_writer_agree_with_the_library(
    tender_key, commercial: bytes, technical: bytes, chunk: int
) -> None:
    data, _ = seal_bytes(tender_key, commercial=commercial, technical=technical, chunk_size=chunk)
    expected = {"commercial": commercial, "technical": technical}
    assert reference_open(data, tender_key) == expected
    written = reference_seal(tender_key.public_key(), "T-9", "B-9", expected, chunk)
    assert open_bytes(written, tender_key, expected_tender="T-9", expected_bidder="B-9") == expected


def test_stored_vector_still_opens() -> None:
    """A fixed envelope (tests/bidding/envelope_v1_vector.json) keeps opening: the format
    must not drift, and other implementations can check themselves against it."""
    vector = json.loads(VECTOR.read_text())
    # The key is derived here, never stored: a public label, so the vector protects nothing.
    seed = vector["tender_private_key_derivation"].encode()
    key = X25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
    data = base64.b64decode(vector["envelope"])
    assert hashlib.sha256(data).hexdigest() == vector["envelope_sha256"]
    expected = {name: base64.b64decode(value) for name, value in vector["parts"].items()}
    assert open_bytes(data, key, expected_tender=vector["tender"]) == expected
    assert reference_open(data, key) == expected
    header = env.read_header(io.BytesIO(data))
    assert header.raw.decode() == vector["header"]
    assert hashlib.sha256(header.core).hexdigest() == vector["header_core_sha256"]
    assert header.hpke_info.hex() == vector["hpke_info_hex"]
    assert header.sha256.hex() == vector["header_sha256"]
    # FORMAT.md shows this very header as its example.
    assert vector["header"] in (Path(env.__file__).parent / "FORMAT.md").read_text()


# --- lots (version 2: the header binds the lot) --------------------------------------------


def seal_for_lot(key: X25519PrivateKey, lot: str | None) -> bytes:
    out = io.BytesIO()
    parts = env.bid_parts(b'{"price":"1.00"}', io.BytesIO(b"tech"), [])
    env.seal(out, key.public_key(), "T-1", "B-1", parts, chunk_size=64, lot=lot)
    return out.getvalue()


def test_a_lot_envelope_is_version_2_and_opens_for_its_lot(tender_key) -> None:
    data = seal_for_lot(tender_key, "2")
    header = env.inspect_header(io.BytesIO(data), expected_lot="2")
    assert (data[7], header.version, header.lot) == (2, 2, "2")
    assert header_obj(data)["lot"] == "2"
    assert open_bytes(data, tender_key, expected_lot="2")["technical"] == b"tech"
    assert reference_open(data, tender_key)["technical"] == b"tech"
    written = reference_seal(tender_key.public_key(), "T-9", "B-9", {"commercial": b"{}"}, 64, "L3")
    assert open_bytes(written, tender_key, expected_lot="L3") == {"commercial": b"{}"}
    one_lot = seal_for_lot(tender_key, None)
    assert one_lot[7] == 1 and "lot" not in header_obj(one_lot)
    assert open_bytes(one_lot, tender_key, expected_lot=None)["technical"] == b"tech"


@pytest.mark.parametrize(
    ("lot", "expected", "message"),
    [
        ("2", "1", "for lot '2', not '1'"),
        ("2", None, "not divided into lots"),
        (None, "1", "names no lot"),
    ],
)
def test_an_envelope_for_another_lot_is_refused_before_any_key(
    lot: str | None, expected: str | None, message: str
) -> None:
    data = seal_for_lot(X25519PrivateKey.generate(), lot)
    with pytest.raises(WrongLot, match=message):
        env.inspect_envelope(io.BytesIO(data), expected_lot=expected)
    # No key given at all: the refusal comes from the header check, before any key is used.
    with pytest.raises(WrongLot, match=message):
        env.decrypt_envelope(
            io.BytesIO(data), None, lambda name: io.BytesIO(), expected_lot=expected
        )  # type: ignore[arg-type]


def test_a_lot_relabelled_in_the_header_does_not_open(tender_key) -> None:
    data = seal_for_lot(tender_key, "2")
    obj = header_obj(data)
    obj["lot"] = "1"
    raw = canonical(obj)
    forged = data[:8] + len(raw).to_bytes(4, "big") + raw + split_envelope(data)[2]
    assert env.inspect_header(io.BytesIO(forged), expected_lot="1").lot == "1"
    with pytest.raises(DecryptionError):  # the HPKE info binds the lot
        open_bytes(forged, tender_key, expected_lot="1")


def test_lot_and_version_must_agree(tender_key) -> None:
    lot_envelope = seal_for_lot(tender_key, "2")
    as_v1 = b"FAIRBID\x01" + lot_envelope[8:]
    with pytest.raises(MalformedEnvelope, match="unknown fields"):
        env.inspect_header(io.BytesIO(as_v1))
    plain = seal_for_lot(tender_key, None)
    as_v2 = b"FAIRBID\x02" + plain[8:]
    with pytest.raises(MalformedEnvelope, match="missing fields"):
        env.inspect_header(io.BytesIO(as_v2))
    obj = header_obj(lot_envelope)
    obj["lot"] = "bad lot"
    raw = canonical(obj)
    bad = lot_envelope[:8] + len(raw).to_bytes(4, "big") + raw + split_envelope(lot_envelope)[2]
    with pytest.raises(MalformedEnvelope, match="lot reference"):
        env.inspect_header(io.BytesIO(bad))
    with pytest.raises(ValueError):
        seal_for_lot(tender_key, "bad lot")
