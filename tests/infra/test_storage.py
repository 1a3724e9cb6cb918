"""app.storage: the content-addressed blob store on the filesystem."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.storage import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobId,
    StorageError,
    StoredBlob,
)

KIB = 1024


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def blob_files(root: Path) -> list[Path]:
    return [path for path in files_under(root) if path.parent.parent.parent == root]


class CountingStream(io.RawIOBase):
    """``total`` bytes of ``fill`` (endless when None), counting what was read; optionally
    raising ``fail_with`` once ``fail_after`` bytes have been read."""

    def __init__(
        self,
        total: int | None,
        *,
        fill: bytes = b"x",
        fail_after: int | None = None,
        fail_with: BaseException | None = None,
    ) -> None:
        self.total = total
        self.fill = fill
        self.fail_after = fail_after
        self.fail_with = fail_with
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.delivered >= self.fail_after:
            assert self.fail_with is not None
            raise self.fail_with
        if size < 0:
            size = 64 * KIB
        if self.total is not None:
            size = min(size, self.total - self.delivered)
        self.delivered += size
        return self.fill * size


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_round_trip(store: BlobStore) -> None:
    data = os.urandom(3 * KIB + 7)
    digest = hashlib.sha256(data).hexdigest()

    blob = store.put_stream(io.BytesIO(data), max_size=10 * KIB, chunk_size=KIB)

    assert blob == StoredBlob(
        sha256=digest, size=len(data), path=f"{digest[:2]}/{digest[2:4]}/{digest}", created=True
    )
    assert (store.root / blob.path).is_file()
    assert store.path_for(digest) == store.root / blob.path
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.verify(digest)
    with store.open(digest) as stored:
        assert stored.read() == data
    assert files_under(store.root) == [store.root / blob.path]  # no temporary file left


def test_put_bytes_and_empty_blob(store: BlobStore) -> None:
    blob = store.put_bytes(b"")
    assert blob.sha256 == hashlib.sha256(b"").hexdigest()
    assert blob.size == 0
    with store.open(blob.sha256) as stored:
        assert stored.read() == b""
    assert store.put_bytes(b"abc").size == 3
    with pytest.raises(BlobTooLarge):
        store.put_bytes(b"abcd", max_size=3)


def test_same_content_is_stored_once(store: BlobStore) -> None:
    first = store.put_bytes(b"tender document v1")
    again = store.put_stream(io.BytesIO(b"tender document v1"), max_size=KIB, chunk_size=5)
    other = store.put_bytes(b"tender document v2")

    assert again.sha256 == first.sha256
    assert again.path == first.path
    assert first.created
    assert not again.created
    assert other.created
    assert len(blob_files(store.root)) == 2
    assert files_under(store.root) == sorted(blob_files(store.root))


@pytest.mark.parametrize("chunk_size", [1, 1000, 1024, 4096])
def test_size_limit_is_exact(store: BlobStore, chunk_size: int) -> None:
    limit = 4 * KIB
    exactly = store.put_stream(
        CountingStream(limit, fill=b"a"), max_size=limit, chunk_size=chunk_size
    )
    assert exactly.size == limit

    with pytest.raises(BlobTooLarge) as refused:
        store.put_stream(
            CountingStream(limit + 1, fill=b"b"), max_size=limit, chunk_size=chunk_size
        )
    assert refused.value.max_size == limit
    assert str(limit) in str(refused.value)
    assert files_under(store.root) == [store.root / exactly.path]


def test_oversized_stream_is_not_drained(store: BlobStore) -> None:
    endless = CountingStream(None)
    with pytest.raises(BlobTooLarge):
        store.put_stream(endless, max_size=100 * KIB, chunk_size=16 * KIB)
    # It stops at the first byte beyond the limit, not at the end (there is none).
    assert endless.delivered == 100 * KIB + 1
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "failure",
    [ConnectionResetError("client went away"), KeyboardInterrupt()],
    ids=["OSError", "KeyboardInterrupt"],
)
def test_stream_failing_midway_leaves_nothing(store: BlobStore, failure: BaseException) -> None:
    store.put_bytes(b"already stored")
    before = files_under(store.root)
    broken = CountingStream(None, fail_after=3 * KIB, fail_with=failure)

    with pytest.raises(type(failure)):
        store.put_stream(broken, max_size=10 * KIB, chunk_size=KIB)

    assert broken.delivered == 3 * KIB  # the failure came after some data was written
    assert files_under(store.root) == before


def test_negative_limit_is_a_programming_error(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="max_size"):
        store.put_bytes(b"x", max_size=-1)


def test_verify_detects_a_damaged_blob(store: BlobStore) -> None:
    blob = store.put_bytes(b"sealed envelope bytes")
    path = store.path_for(blob.sha256)
    assert store.verify(blob.sha256)

    path.chmod(0o600)  # blobs are stored read-only
    path.write_bytes(b"sealed envelope byteZ")

    assert not store.verify(blob.sha256)
    assert store.size(blob.sha256) == blob.size  # same size: only rehashing can tell


def test_storing_again_repairs_a_damaged_blob(store: BlobStore) -> None:
    blob = store.put_bytes(b"sealed envelope bytes")
    path = store.path_for(blob.sha256)
    path.chmod(0o600)
    path.write_bytes(b"sealed envelope byteZ")

    again = store.put_bytes(b"sealed envelope bytes")

    assert again.created
    assert store.verify(blob.sha256)


def test_blobs_are_read_only(store: BlobStore) -> None:
    blob = store.put_bytes(b"immutable")
    assert store.path_for(blob.sha256).stat().st_mode & 0o222 == 0


@pytest.mark.parametrize(
    "bad_id",
    ["", "../../etc/passwd", "ab/cd/" + "0" * 58, "A" * 64, "0" * 63, "0" * 65, "g" * 64, None],
)
def test_blob_ids_are_checked_before_any_path_is_built(store: BlobStore, bad_id) -> None:
    for call in (store.open, store.exists, store.size, store.verify, store.path_for):
        with pytest.raises(InvalidBlobId):
            call(bad_id)


def test_missing_blob(store: BlobStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(missing)
    for call in (store.open, store.size, store.verify):
        with pytest.raises(BlobNotFound) as error:
            call(missing)
        assert missing in str(error.value)
    assert issubclass(BlobNotFound, StorageError)
    assert issubclass(BlobTooLarge, StorageError)


def test_stale_temporary_files_are_collected(store: BlobStore) -> None:
    store.put_bytes(b"creates the temporary directory")
    temp_dir = store.root / "tmp"
    stale = temp_dir / "upload-crashed.part"
    fresh = temp_dir / "upload-live.part"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))

    assert store.remove_stale_temp_files(older_than=24 * 3600) == 1
    assert not stale.exists()
    assert fresh.exists()


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    max_size=st.integers(min_value=0, max_value=3000),
    chunk_size=st.integers(min_value=1, max_value=1500),
)
def test_any_stream_is_stored_whole_or_not_at_all(data: bytes, max_size: int, chunk_size: int):
    with tempfile.TemporaryDirectory() as root:
        store = BlobStore(root)
        if len(data) <= max_size:
            blob = store.put_stream(io.BytesIO(data), max_size=max_size, chunk_size=chunk_size)
            assert blob.sha256 == hashlib.sha256(data).hexdigest()
            with store.open(blob.sha256) as stored:
                assert stored.read() == data
            assert files_under(Path(root)) == [Path(root) / blob.path]
        else:
            with pytest.raises(BlobTooLarge):
                store.put_stream(io.BytesIO(data), max_size=max_size, chunk_size=chunk_size)
            assert files_under(Path(root)) == []


def _same_second_level_pair() -> tuple[bytes, bytes]:
    """Two contents whose blobs share their ``ab/cd/`` directory."""
    seen: dict[str, bytes] = {}
    n = 0
    while True:
        data = b"blob %d" % n
        prefix = hashlib.sha256(data).hexdigest()[:4]
        if prefix in seen:
            return seen[prefix], data
        seen[prefix] = data
        n += 1


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """What each `os.fsync` of the test was called on (the path of the file or directory,
    as the process sees it at that moment)."""
    calls: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return calls


def test_every_directory_on_a_blob_path_is_made_durable(tmp_path: Path, fsynced) -> None:
    root = tmp_path / "blobs"
    store = BlobStore(root)
    first, second = _same_second_level_pair()
    blob = store.put_bytes(first)
    final = root / blob.path
    # The first blob of the process: the 256 first-level directories, made once (one fsync
    # of the root for all of them), the blob's second-level directory (its parent fsynced),
    # the file, and its directory after the rename.
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [f"{n:02x}" for n in range(256)] + ["tmp"]
    )
    assert str(root) in fsynced
    assert str(final.parent.parent) in fsynced
    assert fsynced[-1] == str(final.parent)
    assert fsynced.index(str(final.parent.parent)) < len(fsynced) - 1
    assert any(path.startswith(str(root / "tmp")) for path in fsynced)  # the file's bytes

    fsynced.clear()
    again = store.put_bytes(second)
    assert (root / again.path).parent == final.parent
    # Same second-level directory: the file and its directory, nothing else.
    assert len(fsynced) == 2
    assert fsynced[0].startswith(str(root / "tmp"))
    assert fsynced[1] == str(final.parent)
    assert store.verify(blob.sha256) and store.verify(again.sha256)


def test_a_removed_first_level_directory_is_made_again(store: BlobStore) -> None:
    # Prepared once per process: a directory removed since (an operator's clean-up) is
    # created again, durably, not assumed.
    first = store.put_bytes(b"one")
    (store.root / first.path).unlink()
    (store.root / first.path).parent.rmdir()
    (store.root / first.path).parent.parent.rmdir()
    again = store.put_bytes(b"one")
    assert again.created and store.verify(again.sha256)


# --- direct I/O: blobs written past the page cache ------------------------------------


O_DIRECT = getattr(os, "O_DIRECT", 0)
MIB = 1024 * KIB


class WatchingStream(io.RawIOBase):
    """``data`` in reads of the sizes ``pieces`` gives in turn (a network gives less than is
    asked), noting at each read whether the upload's temporary file is open with O_DIRECT
    (read from /proc/self/fdinfo: what the kernel holds, not what the code meant)."""

    def __init__(self, data: bytes, pieces: list[int], temp_dir: Path) -> None:
        self.data = memoryview(data)
        self.pieces = pieces or [64 * KIB]
        self.temp_dir = temp_dir
        self.direct: list[bool] = []
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.direct.extend(_temp_file_is_direct(self.temp_dir))
        piece = self.pieces[self.reads % len(self.pieces)]
        self.reads += 1
        taken, self.data = self.data[: min(size, piece)], self.data[min(size, piece) :]
        return bytes(taken)


def _temp_file_is_direct(temp_dir: Path) -> list[bool]:
    flags = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(temp_dir)) and target.endswith(".part"):
                fdinfo = Path(f"/proc/self/fdinfo/{fd}").read_text()
                octal = next(line for line in fdinfo.splitlines() if line.startswith("flags:"))
                flags.append(bool(int(octal.split()[1], 8) & O_DIRECT))
        except (FileNotFoundError, StopIteration):
            continue
    return flags


def _takes_direct_io(directory: Path) -> bool:
    import fcntl

    fd, name = tempfile.mkstemp(dir=directory)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | O_DIRECT)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(name)


needs_direct_io = pytest.mark.skipif(
    not O_DIRECT or not Path("/proc/self/fdinfo").is_dir(), reason="Linux's O_DIRECT"
)


@needs_direct_io
@settings(max_examples=40, deadline=None)
@given(
    size=st.one_of(
        st.sampled_from([0, 1, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, 2 * MIB + 4096 + 5]),
        st.integers(min_value=0, max_value=3 * MIB),
    ),
    pieces=st.lists(st.integers(min_value=1, max_value=MIB + 3), max_size=4),
)
def test_a_blob_written_past_the_page_cache_is_byte_identical(size: int, pieces: list[int]):
    """Whatever the size (whole 4 KiB blocks or not, a tail under a block, several 1 MiB
    buffers) and however the stream splits it, the stored blob is the streamed bytes, and
    the temporary file was open with O_DIRECT while they arrived if the filesystem takes it
    (ext4 and tmpfs on Linux 6.6+ do), with ordinary writes if it refuses."""
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as root:
        direct = _takes_direct_io(Path(root))
        store = BlobStore(root)
        stream = WatchingStream(data, pieces, Path(root) / "tmp")
        blob = store.put_stream(stream, max_size=size)
        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert store.path_for(blob.sha256).read_bytes() == data
        assert stream.direct and all(flag == direct for flag in stream.direct)


def test_without_direct_io_the_same_bytes_are_written_through_the_page_cache(
    tmp_path: Path, monkeypatch
) -> None:
    """A platform without O_DIRECT (or a filesystem that refuses it) stores the same bytes
    with ordinary writes."""
    import app.storage as storage

    monkeypatch.setattr(storage, "_O_DIRECT", 0)
    data = os.urandom(MIB + 4097)
    store = BlobStore(tmp_path / "blobs")
    stream = WatchingStream(data, [300 * KIB], tmp_path / "blobs" / "tmp")
    blob = store.put_stream(stream, max_size=len(data))
    assert store.path_for(blob.sha256).read_bytes() == data
    assert stream.direct and not any(stream.direct)


@needs_direct_io
def test_aligned_buffers_are_reused_and_their_number_bounded(tmp_path: Path) -> None:
    """Each upload in progress holds one 1 MiB aligned buffer; finished or failed, it gives
    it back, and no more than `_BUFFERS_KEPT` idle ones are kept (on a filesystem that
    refuses O_DIRECT, none is taken)."""
    import threading

    import app.storage as storage

    direct = _takes_direct_io(tmp_path)
    idle_before = list(storage._idle_buffers)
    store = BlobStore(tmp_path / "blobs")
    uploads = storage._BUFFERS_KEPT + 4
    all_started = threading.Barrier(uploads)

    class Waiting(CountingStream):
        def read(self, size: int = -1) -> bytes:
            if self.delivered == 0:
                all_started.wait(timeout=30)  # every upload holds its buffer now
            return super().read(size)

    def upload(n: int) -> None:
        fill = bytes([n])
        if n % 2:
            store.put_stream(Waiting(MIB + n, fill=fill), max_size=2 * MIB)
        else:  # half of them fail midway
            with pytest.raises(ConnectionResetError):
                store.put_stream(
                    Waiting(None, fill=fill, fail_after=MIB, fail_with=ConnectionResetError()),
                    max_size=4 * MIB,
                )

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if direct:
        assert len(storage._idle_buffers) == storage._BUFFERS_KEPT
        assert len(set(map(id, storage._idle_buffers))) == storage._BUFFERS_KEPT
    else:
        assert storage._idle_buffers == idle_before
    assert len(blob_files(tmp_path / "blobs")) == uploads // 2
    assert not list((tmp_path / "blobs" / "tmp").iterdir())
