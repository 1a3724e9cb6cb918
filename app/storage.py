"""Content-addressed blob store on the local filesystem.

Sealed envelopes and uploaded attachments are stored once, under the SHA-256 of their bytes::

    <root>/ab/cd/abcd…(64 hex digits)      a blob, never modified once in place
    <root>/tmp/upload-….part               a blob being received

A blob is streamed into a temporary file under ``<root>/tmp`` (the same filesystem, so the
final rename is atomic), hashed while it is written (with O_DIRECT where the filesystem takes
it: past the page cache, see ``_BlobWriter``), fsynced, renamed into place and its
directory fsynced.  The 256 first-level directories are made once per process and root (one
fsync of the root for all of them), so a blob costs the file's fsync, its directory's and,
when its second-level directory is new, that directory's parent's.  Under gevent the fsyncs
run in gevent's thread pool: the disk's wait no longer stops every other upload of the
worker.  A blob path therefore only ever holds complete, durable content: a
failed or oversized upload leaves nothing behind, and a crash of the whole process leaves at
most a ``.part`` file that :meth:`BlobStore.remove_stale_temp_files` collects.

The same content stored twice is kept once (``StoredBlob.created`` says which call wrote it).
Keys (``StoredBlob.path``) are relative POSIX paths so that an S3-compatible store can later
use them as object names unchanged.

No Flask here: the web layer opens the store with ``current_app.config`` values and passes
request streams in.  POSIX only (directory fsync).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import mmap
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHUNK_SIZE",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "InvalidBlobId",
    "StorageError",
    "StoredBlob",
]

CHUNK_SIZE = 1024 * 1024
_TEMP_DIR = "tmp"
_TEMP_PREFIX = "upload-"
_TEMP_SUFFIX = ".part"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Blobs are immutable: read-only for the owner and the group (workers may run as another user
# of the same group).  Renaming over or deleting a read-only file needs only the directory.
_BLOB_MODE = 0o440


class StorageError(Exception):
    """Base class of every error raised by the blob store."""


class BlobTooLarge(StorageError):
    """The stream held more than ``max_size`` bytes; nothing was stored."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the upload is larger than the limit of {max_size} bytes")
        self.max_size = max_size


class BlobNotFound(StorageError, LookupError):
    """No blob is stored under this SHA-256."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no blob stored under {sha256}")
        self.sha256 = sha256


class InvalidBlobId(StorageError, ValueError):
    """A blob id is not 64 lowercase hexadecimal digits (it is never used as a path)."""

    def __init__(self, value: object) -> None:
        super().__init__(f"not a blob id (64 lowercase hex digits): {value!r:.80}")


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    path: str
    """The blob's key: relative POSIX path ``ab/cd/<sha256>`` under the store's root."""
    created: bool = True
    """False when the same content was already stored and this call only deduplicated."""


class BlobStore:
    """A content-addressed blob store rooted at ``root`` (created if missing)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._temp_dir = self.root / _TEMP_DIR

    def _prepare(self) -> None:
        """Make the temporary directory and the 256 first-level directories, once per
        process: an upload then creates at most its second-level directory."""
        if self.root in _prepared:
            return
        with _prepared_lock:
            if self.root in _prepared:
                return
            _make_dirs(self._temp_dir)
            for prefix in range(256):
                with contextlib.suppress(FileExistsError):
                    (self.root / f"{prefix:02x}").mkdir()
            # Always, even if another process made them: its fsync may not have run yet.
            _fsync_dir(self.root)
            _prepared.add(self.root)

    # --- writing -----------------------------------------------------------------------

    def put_stream(
        self, stream: BinaryIO, *, max_size: int, chunk_size: int = CHUNK_SIZE
    ) -> StoredBlob:
        """Store everything ``stream`` yields until EOF, in bounded memory.

        Raises :class:`BlobTooLarge` as soon as byte ``max_size + 1`` arrives (the stream is
        not drained further).  On that or any other exception, including one raised by the
        stream itself, the partial temporary file is removed and the exception propagates.
        """
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self._prepare()
        _make_dirs(self._temp_dir)  # a stat, unless something removed it since
        fd, temp_name = tempfile.mkstemp(
            dir=self._temp_dir, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX
        )
        temp = Path(temp_name)
        try:
            hasher = hashlib.sha256()
            size = 0
            with _BlobWriter(fd) as out:
                while True:
                    # Ask for at most one byte beyond the limit: enough to know it is exceeded.
                    chunk = stream.read(min(chunk_size, max_size - size + 1))
                    if chunk is None:
                        raise StorageError("the stream is non-blocking and has no data ready")
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_size:
                        raise BlobTooLarge(max_size)
                    hasher.update(chunk)
                    out.write(chunk)
                out.finish()
            return self._commit(temp, hasher.hexdigest(), size)
        except BaseException:
            # BaseException too: an interrupted upload (KeyboardInterrupt, worker timeout)
            # must not leave its partial file behind either.
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise

    def put_bytes(self, data: bytes, *, max_size: int | None = None) -> StoredBlob:
        """Store ``data``; ``max_size`` (default: no limit) applies as in :meth:`put_stream`."""
        return self.put_stream(
            io.BytesIO(data), max_size=len(data) if max_size is None else max_size
        )

    def _commit(self, temp: Path, sha256: str, size: int) -> StoredBlob:
        key = _key(sha256)
        final = self.root / key
        existing = _stat_or_none(final)
        if existing is not None and existing.st_size == size and self.verify(sha256):
            # The same content is already in place: keep it.  (Rehashed first, so that a copy
            # damaged on disk is replaced by this upload rather than vouched for.)
            temp.unlink()
            return StoredBlob(sha256=sha256, size=size, path=key, created=False)
        # New content, or the repair of a damaged copy.
        _make_dirs(final.parent)
        os.chmod(temp, _BLOB_MODE)
        os.replace(temp, final)
        _fsync_dir(final.parent)
        return StoredBlob(sha256=sha256, size=size, path=key, created=True)

    # --- reading -----------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        """The filesystem path a blob has (or would have); checks the id, not existence."""
        return self.root / _key(sha256)

    def open(self, sha256: str) -> BinaryIO:
        """The blob's content as a binary file (close it, e.g. with ``with``)."""
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        info = _stat_or_none(self.path_for(sha256))
        if info is None:
            raise BlobNotFound(sha256)
        return info.st_size

    def verify(self, sha256: str, *, chunk_size: int = CHUNK_SIZE) -> bool:
        """Whether the stored bytes still hash to ``sha256`` (False: damaged on disk)."""
        hasher = hashlib.sha256()
        with self.open(sha256) as blob:
            while chunk := blob.read(chunk_size):
                hasher.update(chunk)
        return hasher.hexdigest() == sha256

    # --- housekeeping ------------------------------------------------------------------

    def remove_stale_temp_files(self, *, older_than: float = 24 * 3600) -> int:
        """Delete ``.part`` files left by a crashed process; returns how many were removed.

        ``older_than`` (seconds) must exceed the longest upload, or live uploads lose their
        temporary file.
        """
        if not self._temp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for temp in self._temp_dir.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
        return removed


def _key(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise InvalidBlobId(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


_prepared: set[Path] = set()  # roots whose first-level directories exist and are durable
_prepared_lock = threading.Lock()


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` that fsyncs the parent of every directory it creates, so that a blob's
    path survives a power loss together with the blob."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        # Created concurrently by another upload, it may not be durable yet: fsync anyway.
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


# Direct I/O. A blob is fsynced before anyone is told it is stored, so its bytes go to the
# disk at once anyway; written through the page cache they would first be copied into newly
# allocated cache pages (on a VM whose host reclaims the guest's free memory, the first touch
# of each such page is a fault in the host: ~14 ms of CPU per 5 MB here, against ~1 ms
# direct; bench/README.md). So the temporary file is written with O_DIRECT from a reused,
# page-aligned buffer, in whole multiples of the alignment; the tail (under 4 KiB) is written
# after O_DIRECT is cleared. A filesystem that refuses O_DIRECT (fcntl fails) gets the
# ordinary writes. The bytes, the hash, the fsyncs and the rename are the same either way.
_DIRECT_ALIGN = 4096  # a multiple of every logical block size Linux devices use (512, 4096)
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; 0: never direct
_BUFFERS_KEPT = 16  # idle aligned buffers kept per process (1 MiB each)
_idle_buffers: list[memoryview] = []


class _BlobWriter:
    """Writes a blob's bytes to a new file descriptor (closed on exit): through O_DIRECT from
    a reused aligned buffer when the file allows it, else with ordinary writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._fill = 0
        self._buffer: memoryview | None = None
        try:
            if _O_DIRECT and _set_direct(fd, True):
                try:
                    self._buffer = _idle_buffers.pop()  # atomic: threads may race for the last
                except IndexError:
                    self._buffer = _new_buffer()
        except BaseException:
            os.close(fd)  # the file is the writer's from the start
            raise

    def __enter__(self) -> _BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            os.close(self._fd)
        finally:
            buffer, self._buffer = self._buffer, None
            if buffer is not None and len(_idle_buffers) < _BUFFERS_KEPT:
                _idle_buffers.append(buffer)

    def write(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer is None:
            _write_all(self._fd, data)
            return
        view = memoryview(data)
        while view:
            taken = min(len(view), len(buffer) - self._fill)
            buffer[self._fill : self._fill + taken] = view[:taken]
            self._fill += taken
            view = view[taken:]
            if self._fill == len(buffer):
                self._write_direct(buffer)
                self._fill = 0

    def finish(self) -> None:
        """Write what is buffered and fsync: returns once every byte is on disk."""
        buffer = self._buffer
        if buffer is not None and self._fill:
            whole = self._fill - self._fill % _DIRECT_ALIGN
            if whole:
                self._write_direct(buffer[:whole])
            if whole < self._fill:
                _set_direct(self._fd, False)  # the tail is not a whole block
                _write_all(self._fd, buffer[whole : self._fill])
            self._fill = 0
        _fsync(self._fd)

    def _write_direct(self, data: memoryview) -> None:
        try:
            written = os.write(self._fd, data)
        except OSError as error:
            if error.errno != errno.EINVAL:  # e.g. ENOSPC: the caller's error
                raise
            written = 0  # a filesystem that took the flag but not the write
        if written < len(data):  # (a short write is not seen on Linux regular files)
            _set_direct(self._fd, False)
            _write_all(self._fd, data[written:])


def _set_direct(fd: int, direct: bool) -> bool:
    """Set or clear O_DIRECT on an open file; False if the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if direct else flags & ~_O_DIRECT)
    except OSError:
        return False
    return True


def _new_buffer() -> memoryview:
    # An anonymous map is page-aligned, which a bytearray is not.
    return memoryview(mmap.mmap(-1, CHUNK_SIZE))


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync(fd: int) -> None:
    """`os.fsync`, in gevent's thread pool when gevent has patched this process (a gevent
    worker): the wait for the disk then blocks this upload only, not every greenlet of the
    worker. Returns once the data is on disk, as `os.fsync` does."""
    if _gevent_patched():
        import gevent

        gevent.get_hub().threadpool.apply(os.fsync, (fd,))
    else:
        os.fsync(fd)


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")
