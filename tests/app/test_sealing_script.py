"""The sealing script's Subresource-Integrity value (app.bids.sealing_script)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil

import pytest

from app.bids import sealing_script


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    path = tmp_path / "build" / "seal.js"
    path.parent.mkdir()
    path.write_bytes(b"var FairbidSeal = (() => ({}))();\n")
    monkeypatch.setattr(sealing_script, "BUNDLE_PATH", path)
    return path


def test_integrity_is_sha384_of_the_file(bundle):
    assert sealing_script.bundle_path() == bundle
    value = sealing_script.integrity()
    assert value == _sri(bundle.read_bytes())
    assert value.startswith("sha384-") and len(base64.b64decode(value[7:])) == 48
    assert sealing_script.integrity() == value  # cached, same answer


def test_integrity_follows_changes_to_the_file(bundle):
    before = sealing_script.integrity()
    stat = bundle.stat()
    # Same size, same modification time: only the inode changes (a rebuild writes a new file).
    replacement = bundle.with_name("seal.js.new")
    replacement.write_bytes(bundle.read_bytes().replace(b"{}", b"[]"))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, bundle)
    after = sealing_script.integrity()
    assert after != before and after == _sri(bundle.read_bytes())
    # Rewritten in place with a new modification time.
    bundle.write_bytes(b"// rebuilt\n" + bundle.read_bytes())
    assert sealing_script.integrity() == _sri(bundle.read_bytes())


def test_a_temp_copy_of_the_real_bundle(tmp_path, monkeypatch):
    real = sealing_script.bundle_path()  # built by `make install`
    copy = tmp_path / "seal.js"
    shutil.copyfile(real, copy)
    assert sealing_script.integrity() == _sri(real.read_bytes())
    monkeypatch.setattr(sealing_script, "BUNDLE_PATH", copy)
    assert sealing_script.integrity() == _sri(real.read_bytes())
    with copy.open("ab") as stream:
        stream.write(b"\n// tampered\n")
    assert sealing_script.integrity() != _sri(real.read_bytes())
    assert sealing_script.integrity() == _sri(copy.read_bytes())


def test_a_missing_bundle_says_to_run_make(tmp_path, monkeypatch):
    monkeypatch.setattr(sealing_script, "BUNDLE_PATH", tmp_path / "nope" / "seal.js")
    with pytest.raises(sealing_script.SealingScriptMissing, match="run `make install`"):
        sealing_script.bundle_path()
    with pytest.raises(sealing_script.SealingScriptMissing, match="make"):
        sealing_script.integrity()
