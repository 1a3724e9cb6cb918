"""The app's SECRET_KEY when none is configured (development and testing).

A random key is generated on first run into `<instance>/secret_key` (mode 0600) and reused
after, so sessions, e-mail tokens and everything derived from the key (custodians' waiting
shares, members' sealed signing keys, TOTP secrets at rest) survive a restart with the same
instance folder. Several processes starting together take a file lock, so they all end up
with the same key. Production must configure SECRET_KEY (`ProductionConfig.check`); a key
published in the repository is refused in every mode.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from config import is_published_secret

log = logging.getLogger(__name__)

FILENAME = "secret_key"
_GENERATE_IN = frozenset({"development", "testing"})


class SecretKeyRefused(RuntimeError):
    """A configuration that must not run: a published, short or exposed secret key."""


def ensure_secret_key(app: Flask) -> None:
    configured = app.config.get("SECRET_KEY") or ""
    if configured:
        if is_published_secret(configured):
            raise SecretKeyRefused(
                "Refusing to start: SECRET_KEY is a key published in the Fairbid repository; "
                "set a random value of at least 32 characters (or unset it outside production)"
            )
        return
    if app.config.get("ENV_NAME") not in _GENERATE_IN:
        raise SecretKeyRefused("Refusing to start: SECRET_KEY must be configured")
    app.config["SECRET_KEY"] = load_or_create(Path(app.instance_path) / FILENAME)


def load_or_create(path: Path) -> str:
    """The key stored at `path`, written first (random, mode 0600) if there is none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{FILENAME}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if not path.exists():
                _create(path)
            mode = path.stat().st_mode & 0o777
            value = path.read_text(encoding="ascii").strip()
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    if mode & 0o077:
        raise SecretKeyRefused(
            f"Refusing to start: {path} is readable by other users (mode {mode:o}); "
            "`chmod 600` it or delete it to generate a new key"
        )
    if len(value) < 32 or is_published_secret(value):
        raise SecretKeyRefused(
            f"Refusing to start: {path} does not hold a usable key; delete it to generate one"
        )
    return value


def _create(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.info("generated a secret key for development use in %s", path)
