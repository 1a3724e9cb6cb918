"""Fixtures of the bidding library tests: keys made once per session (key generation is
cheap, but hypothesis forbids function-scoped fixtures in property tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tender_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture(scope="session")
def other_tender_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture(scope="session")
def platform_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for ``python -m bidding`` subprocesses: the repository on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
