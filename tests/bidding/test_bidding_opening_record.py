"""The signed opening record: the platform's signature, the sealing record it names, and the
envelopes it opened; every alteration is caught, offline and from the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bidding import merkle
from bidding.errors import OpeningRecordError
from bidding.opening_record import sign_opening_record, verify_opening_record
from bidding.receipts import dump_document

REPO_ROOT = Path(__file__).resolve().parents[2]


SEALED_AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _hashes(n: int) -> list[str]:
    return [hashlib.sha256(f"envelope {i}".encode()).hexdigest() for i in range(n)]


def _sealing(key: Ed25519PrivateKey, hashes: list[str]) -> bytes:
    return dump_document(merkle.make_sealing_record("T7", hashes, SEALED_AT, key))


def _opening(key: Ed25519PrivateKey, sealing: bytes, opened: list[str]) -> bytes:
    body = {
        "version": 1,
        "tender": "T7",
        "reference": "HZ-G-2026-007",
        "opened_at": "2026-12-04T10:00:00+00:00",
        "sealing_record_sha256": hashlib.sha256(sealing).hexdigest(),
        "lines": [
            {"sequence": i, "envelope_sha256": h, "commercial": {"price": f"{100 + i}.00"}}
            for i, h in enumerate(opened, 1)
        ],
    }
    return dump_document(sign_opening_record(body, key))


@given(st.integers(min_value=1, max_value=12), st.data())
def test_a_genuine_record_verifies_with_any_subset_of_sealed_envelopes(platform_key, n, data):
    hashes = _hashes(n)
    opened = data.draw(st.lists(st.sampled_from(hashes), unique=True))
    sealing = _sealing(platform_key, hashes)
    body = verify_opening_record(
        _opening(platform_key, sealing, opened), platform_key.public_key(), sealing
    )
    assert [line["envelope_sha256"] for line in body["lines"]] == opened


def test_every_alteration_is_caught(platform_key):
    hashes = _hashes(3)
    sealing = _sealing(platform_key, hashes)
    genuine = _opening(platform_key, sealing, hashes)
    public = platform_key.public_key()

    def changed(edit) -> bytes:
        document = json.loads(genuine)
        edit(document["record"])
        return json.dumps(document).encode()

    cases = {
        "a price changed": (
            changed(lambda r: r["lines"][0]["commercial"].update(price="1.00")),
            "invalid signature",
        ),
        "a line removed": (changed(lambda r: r["lines"].pop()), "invalid signature"),
        "signed by another key": (
            _opening(Ed25519PrivateKey.generate(), sealing, hashes),
            "names signing key",
        ),
    }
    for document, reason in cases.values():
        with pytest.raises(OpeningRecordError, match=reason):
            verify_opening_record(document, public, sealing)
    # Another sealing record than the one it names, and an envelope that was never sealed.
    other = _sealing(platform_key, _hashes(4))
    with pytest.raises(OpeningRecordError, match="names sealing record"):
        verify_opening_record(genuine, public, other)
    smuggled = _opening(platform_key, sealing, [*hashes, _hashes(5)[4]])
    with pytest.raises(OpeningRecordError, match="did not seal"):
        verify_opening_record(smuggled, public, sealing)


def test_the_command_line_checks_it(platform_key, tmp_path):
    hashes = _hashes(2)
    sealing = _sealing(platform_key, hashes)
    (tmp_path / "sealing.json").write_bytes(sealing)
    (tmp_path / "opening.json").write_bytes(_opening(platform_key, sealing, hashes))
    (tmp_path / "key.pem").write_bytes(
        platform_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bidding", "verify-opening", *args],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    common = ["--platform-key", str(tmp_path / "key.pem")]
    ok = run(
        str(tmp_path / "opening.json"), *common, "--sealing-record", str(tmp_path / "sealing.json")
    )
    assert ok.returncode == 0, ok.stderr
    assert "every opened envelope is in the sealing record" in ok.stdout
    document = json.loads((tmp_path / "opening.json").read_text())
    document["record"]["lines"][1]["commercial"]["price"] = "99.00"
    (tmp_path / "altered.json").write_text(json.dumps(document))
    bad = run(str(tmp_path / "altered.json"), *common)
    assert bad.returncode == 1
    assert "invalid signature" in bad.stderr


def test_lines_name_the_lot_the_sealing_record_sealed_their_envelope_for(platform_key):
    hashes = _hashes(3)
    lots = ["1", "2", "2"]
    sealing = dump_document(
        merkle.make_sealing_record("T7", hashes, SEALED_AT, platform_key, lots=lots)
    )
    public = platform_key.public_key()

    def opening(line_lots: list[str | None]) -> bytes:
        lines = [
            {"sequence": i, "envelope_sha256": h, **({"lot": lot} if lot else {})}
            for i, (h, lot) in enumerate(zip(hashes, line_lots, strict=True), 1)
        ]
        body = {
            "version": 1,
            "tender": "T7",
            "reference": "HZ-G-2026-007",
            "opened_at": "2026-12-04T10:00:00+00:00",
            "sealing_record_sha256": hashlib.sha256(sealing).hexdigest(),
            "lines": lines,
        }
        return dump_document(sign_opening_record(body, platform_key))

    assert len(verify_opening_record(opening(lots), public, sealing)["lines"]) == 3
    with pytest.raises(OpeningRecordError, match="line 2 is for lot 1, but the sealing record"):
        verify_opening_record(opening(["1", "1", "2"]), public, sealing)
    with pytest.raises(OpeningRecordError, match="line 3 is for lot None"):
        verify_opening_record(opening(["1", "2", None]), public, sealing)
