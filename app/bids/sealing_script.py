"""The browser sealing script: where its bundle is and its Subresource-Integrity value.

``make`` builds ``app/static/build/seal.js`` from ``frontend/seal.js`` and ``@hpke/core``
(esbuild, see the Makefile's ``node-deps``).  Pages load it as::

    <script src="{{ url_for('static', filename=sealing_script.STATIC_FILENAME) }}"
            integrity="{{ sealing_script.integrity() }}" crossorigin="anonymous"></script>

and the tender page publishes the same ``sha384-...`` value, so a bidder or an auditor can
check that the code that sealed a bid is the published one.  The value is computed from the
file and cached until the file changes (size, modification time or inode).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

__all__ = ["STATIC_FILENAME", "SealingScriptMissing", "bundle_path", "integrity"]

STATIC_FILENAME = "build/seal.js"
BUNDLE_PATH = Path(__file__).resolve().parent.parent / "static" / STATIC_FILENAME

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


class SealingScriptMissing(RuntimeError):
    """The sealing script bundle has not been built."""


def bundle_path() -> Path:
    """Path of the built sealing script; raises :class:`SealingScriptMissing` if absent."""
    path = BUNDLE_PATH
    if not path.is_file():
        raise SealingScriptMissing(
            f"the browser sealing script {path} is missing: run `make install` (or `make`), "
            f"which builds it from frontend/ with esbuild"
        )
    return path


def integrity() -> str:
    """The bundle's Subresource-Integrity value, ``"sha384-" + base64(SHA-384(file))``."""
    path = bundle_path()
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
    digest = hashlib.sha384()
    with open(path, "rb", buffering=0) as stream:
        while block := stream.read(1 << 16):
            digest.update(block)
        # Re-check after reading: a rebuild while we read must not cache a stale value.
        after = os.fstat(stream.fileno())
    value = "sha384-" + base64.b64encode(digest.digest()).decode("ascii")
    if (after.st_size, after.st_mtime_ns, after.st_ino, after.st_dev) == key:
        with _lock:
            _cache[path] = (key, value)
    return value
