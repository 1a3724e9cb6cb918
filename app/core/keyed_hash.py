"""Keyed hashes of what must be compared but never read back (an uploader's address and
user agent): HMAC-SHA256 under a key derived (HKDF-SHA256) from the app's SECRET_KEY, so the
stored values cannot be reversed by trying every address without the instance secret.
Equal inputs give equal hashes on one instance, which is all the same-source signals need."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_INFO = b"fairbid keyed hash of submission sources v1"


def _key() -> bytes:
    secret = current_app.config["SECRET_KEY"]
    ikm = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(ikm)


def keyed_hash(purpose: str, value: str | None) -> str | None:
    """Hex HMAC-SHA256 of `value` for `purpose` ("address", "agent"); None for no value."""
    if not value:
        return None
    message = purpose.encode("ascii") + b"\x00" + value.strip().encode("utf-8", "replace")
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()
