"""The verification bundle's signed manifest (bidding.bundle, `verify-bundle`)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bidding.bundle import MANIFEST_NAME, safe_name, sign_manifest, verify_bundle
from bidding.cli import main
from bidding.errors import BundleError
from bidding.keys import public_key_to_pem
from bidding.receipts import dump_document

FILES = {"audit.jsonl": b"{}\n", "notices/award.json": b"{}", "VERIFY.md": b"# x\n"}


def write(folder, key, files=FILES):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / MANIFEST_NAME).write_bytes(dump_document(sign_manifest("T1", "R-1", files, key)))


def test_a_bundle_verifies(tmp_path, platform_key):
    write(tmp_path, platform_key)
    summary = verify_bundle(tmp_path, platform_key.public_key())
    assert (summary.tender, summary.files) == ("T1", 3)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: (d / "audit.jsonl").write_bytes(b"{}\n\n"), "audit.jsonl: altered"),
        (lambda d: (d / "notices" / "award.json").unlink(), "missing"),
        (lambda d: (d / "notices" / "extra.json").write_bytes(b"{}"), "not part of"),
        (lambda d: (d / MANIFEST_NAME).write_bytes(b"{}"), "manifest"),
    ],
)
def test_every_change_is_named(tmp_path, platform_key, change, reason):
    write(tmp_path, platform_key)
    change(tmp_path)
    with pytest.raises(BundleError, match=reason):
        verify_bundle(tmp_path, platform_key.public_key())


def test_another_key_is_refused_and_names_are_checked(tmp_path, platform_key, capsys):
    write(tmp_path, Ed25519PrivateKey.generate())
    key_file = tmp_path.parent / "platform-key.pem"
    key_file.write_bytes(public_key_to_pem(platform_key.public_key()))
    assert main(["verify-bundle", str(tmp_path), "--platform-key", str(key_file)]) == 1
    assert "signed by another key" in capsys.readouterr().err
    for name in ("../x", "/etc/passwd", "a\\b", MANIFEST_NAME, ""):
        assert not safe_name(name)
        with pytest.raises(ValueError):
            sign_manifest("T1", "R", {name: b""}, platform_key)
