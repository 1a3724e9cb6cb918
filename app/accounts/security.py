"""Password hashing (argon2), signed e-mail tokens, TOTP checks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

T = TypeVar("T")

# Verified against when the e-mail is unknown, so both paths cost one argon2 verification.
_dummy_hashes: dict[tuple[int, int], str] = {}

# --- argon2 off the event loop ----------------------------------------------------------------
# A verification at the production cost is ~170 ms of CPU in one C call. Under gevent
# (production: gunicorn's gevent workers) that call would hold the worker's only thread, so
# every other request of the worker (and every database round trip it waits on, such as
# one made under the audit chain's lock) would wait for it. argon2-cffi releases the GIL in
# its C call, so it is run in a native thread of a small pool of gevent's: the event loop
# keeps serving meanwhile and the verifications use the other cores. The pool is bounded
# (one thread per core) so that a surge of sign-ins queues instead of allocating 64 MiB
# per waiting sign-in at once. It is its own pool, not the hub's, so that queued
# sign-ins never delay what gevent runs in the hub's pool (its DNS resolver).
_pool = None
_pool_pid = 0
_pool_lock = threading.Lock()


# --- sign-ins admitted at once ------------------------------------------------------------------
# Each sign-in in progress holds a pooled database connection for its two short reads and
# waits for a turn of the argon2 pool in between. Under a surge (300 bidders at once at a
# deadline) the sign-ins a process has not yet a turn for wait here, before their first
# query, holding no connection, instead of each taking one from the pool and timing out on
# it. A threading semaphore: gevent's when gevent has patched the process.
_slots: dict[tuple[int, int], threading.BoundedSemaphore] = {}


def sign_in_slot(size: int, wait: float) -> threading.BoundedSemaphore | None:
    """One of this process's `size` sign-in slots, waited for at most `wait` seconds: the
    semaphore to release when done, or None when none came free in time."""
    key = (os.getpid(), size)  # a semaphore does not survive a fork
    with _pool_lock:
        slots = _slots.get(key)
        if slots is None:
            slots = _slots[key] = threading.BoundedSemaphore(size)
    return slots if slots.acquire(timeout=wait) else None


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def _argon2_pool():
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():  # a pool does not survive a fork
            from gevent.threadpool import ThreadPool

            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            _pool = ThreadPool(max(1, cores or os.cpu_count() or 1))
            _pool_pid = os.getpid()
        return _pool


def run_blocking(function: Callable[..., T], *args) -> T:
    """`function(*args)`, in the argon2 pool's native thread when gevent has patched the
    process (the calling greenlet waits, the others run), else a plain call."""
    if not _gevent_patched():
        return function(*args)
    return _argon2_pool().apply(function, args)


def _hasher() -> PasswordHasher:
    """argon2id with the configured cost (the library's defaults unless configured)."""
    config = current_app.config
    return PasswordHasher(
        time_cost=config.get("ARGON2_TIME_COST", 3),
        memory_cost=config.get("ARGON2_MEMORY_COST", 65536),
    )


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = (hasher.time_cost, hasher.memory_cost)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = run_blocking(hasher.hash, secrets.token_hex(16))
    return _dummy_hashes[key]


TOTP_INTERVAL = 30


def hash_password(password: str) -> str:
    return run_blocking(_hasher().hash, password)


def check_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches the hash (None: verified against a dummy, then False).
    Run it with no transaction open where that matters: it takes ~170 ms at the production
    cost (see `authenticate`)."""
    hasher = _hasher()
    try:
        verified = run_blocking(hasher.verify, password_hash or _dummy_hash(hasher), password)
    except (VerificationError, InvalidHashError):
        return False
    return verified and password_hash is not None


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def make_token(salt: str, payload: dict) -> str:
    return _serializer(salt).dumps(payload)


def read_token(salt: str, token: str, max_age: int) -> dict | None:
    """The payload of a valid, unexpired token; None for anything else."""
    try:
        payload = _serializer(salt).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    return payload if isinstance(payload, dict) else None


def password_fingerprint(password_hash: str) -> str:
    """Short digest of the current hash: a reset link dies once the password changes."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def new_totp_secret() -> str:
    return pyotp.random_base32()


# --- TOTP secrets at rest --------------------------------------------------------------------
# A secret is stored as "v1:<key id>:<base64(nonce || AES-256-GCM ciphertext)>". The key is
# HKDF-SHA256 of FAIRBID_TOTP_KEY (or, when that is unset, of SECRET_KEY) with its own info
# label, so it is used for nothing else. Rotation: put the old key material in
# FAIRBID_TOTP_PREVIOUS_KEYS, the new one in FAIRBID_TOTP_KEY, run `flask users
# reseal-totp`, then drop the old one (README, "Rotating keys").
TOTP_SEAL_PREFIX = "v1:"
_TOTP_INFO = b"fairbid/totp-secret/v1"
_TOTP_AAD = b"fairbid totp secret"


class TotpKeyError(RuntimeError):
    """A stored TOTP secret that no configured key opens (key lost or row tampered with).
    Never treated as "not enrolled": that would let a password alone enrol a new device."""


def _totp_key(material: str | bytes) -> bytes:
    ikm = material.encode("utf-8") if isinstance(material, str) else bytes(material)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_TOTP_INFO).derive(ikm)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"key id" + key).hexdigest()[:12]


def _totp_keys() -> tuple[bytes, dict[str, bytes]]:
    """The current sealing key and every key that may open a stored secret, by id."""
    config = current_app.config
    current = _totp_key(config.get("FAIRBID_TOTP_KEY") or config["SECRET_KEY"])
    keys = {_key_id(current): current}
    for material in config.get("FAIRBID_TOTP_PREVIOUS_KEYS") or ():
        key = _totp_key(material)
        keys.setdefault(_key_id(key), key)
    return current, keys


def seal_totp_secret(secret: str) -> str:
    key, _ = _totp_keys()
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, secret.encode("ascii"), _TOTP_AAD)
    body = base64.b64encode(nonce + sealed).decode("ascii")
    return f"{TOTP_SEAL_PREFIX}{_key_id(key)}:{body}"


def open_totp_secret(sealed: str) -> str:
    _, keys = _totp_keys()
    try:
        version, key_id, body = sealed.split(":", 2)
        if f"{version}:" != TOTP_SEAL_PREFIX:
            raise ValueError(version)
        key = keys[key_id]
        raw = base64.b64decode(body, validate=True)
        return AESGCM(key).decrypt(raw[:12], raw[12:], _TOTP_AAD).decode("ascii")
    except (ValueError, KeyError, InvalidTag, binascii.Error) as error:
        raise TotpKeyError(
            "a stored TOTP secret does not open with the configured keys "
            "(FAIRBID_TOTP_KEY / FAIRBID_TOTP_PREVIOUS_KEYS, or SECRET_KEY)"
        ) from error


def totp_sealed_with_current_key(sealed: str) -> bool:
    key, _ = _totp_keys()
    return sealed.startswith(f"{TOTP_SEAL_PREFIX}{_key_id(key)}:")


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def totp_qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")


def match_totp(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step a code belongs to (±1 step of drift), or None.

    Steps at or before `last_step` are refused, so an observed code cannot be replayed.
    """
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
    now = time.time() if now is None else now
    current = int(now // TOTP_INTERVAL)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_api_token() -> tuple[str, str]:
    """A fresh bearer token and the SHA-256 that is stored instead of it."""
    token = "fb_" + secrets.token_urlsafe(32)
    return token, api_token_hash(token)


def api_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
