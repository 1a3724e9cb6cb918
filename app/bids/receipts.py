"""The platform's receipt key: the Ed25519 key that signs receipts and sealing records.

Production mounts a PEM file and names it in `FAIRBID_PLATFORM_KEY` (PKCS#8, unencrypted,
readable only by the service account). Development and tests generate one on first use
under `PLATFORM_KEY_DIR` (default `<instance>/keys`), mode 0600, created atomically so that
several workers starting together end up with the same key. The private key is never logged
or shown; its public half is published at `/api/v1/platform/receipt-key.pem` so that anyone
can check a receipt offline with `python -m bidding verify-receipt`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app

from bidding import keys

log = logging.getLogger(__name__)

KEY_FILENAME = "platform-receipt.key.pem"
_GENERATE_IN = frozenset({"development", "testing"})
_cache: dict[str, Ed25519PrivateKey] = {}
_lock = threading.Lock()


class PlatformKeyMissing(RuntimeError):
    """Production without a configured receipt key: no receipt can be issued."""


def platform_key_path() -> Path:
    configured = current_app.config.get("FAIRBID_PLATFORM_KEY") or ""
    if configured:
        return Path(configured)
    directory = current_app.config.get("PLATFORM_KEY_DIR") or Path(current_app.instance_path) / (
        "keys"
    )
    return Path(directory) / KEY_FILENAME


def platform_signing_key() -> Ed25519PrivateKey:
    """The receipt key, loaded once per process (generated first in development/testing)."""
    path = platform_key_path()
    cache_key = str(path)
    key = _cache.get(cache_key)
    if key is not None:
        return key
    with _lock:
        key = _cache.get(cache_key)
        if key is None:
            key = _load_or_create(path)
            _cache[cache_key] = key
    return key


def platform_public_key_pem() -> bytes:
    return keys.public_key_to_pem(platform_signing_key().public_key())


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        configured = bool(current_app.config.get("FAIRBID_PLATFORM_KEY"))
        if configured or current_app.config.get("ENV_NAME") not in _GENERATE_IN:
            raise PlatformKeyMissing(
                "The platform receipt key is not configured: set FAIRBID_PLATFORM_KEY to the "
                "path of its PEM file (Ed25519, PKCS#8)."
            )
        _create(path)
    return keys.load_private_key_pem(path.read_bytes(), kind=Ed25519PrivateKey)


def _create(path: Path) -> None:
    """Write a fresh key to `path` unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = keys.generate_platform_key()
    fd, temp = tempfile.mkstemp(prefix=".platform-key-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
            handle.write(keys.private_key_to_pem(key))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # A hard link appears complete or not at all, and never replaces a key that
            # another worker has just created.
            os.link(temp, path)
        except FileExistsError:
            return
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    log.info(
        "generated the platform receipt key (fingerprint %s) for development use",
        keys.key_fingerprint(key.public_key()),
    )
