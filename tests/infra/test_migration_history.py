"""Migrations are history: a landed revision file is never edited; a schema change is a new
revision. migrations/versions.sha256 lists each revision file's SHA-256 (`sha256sum` format,
LF line endings); it only grows: append a line for every new revision file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "migrations" / "versions"
MANIFEST = ROOT / "migrations" / "versions.sha256"
LINE = re.compile(r"(?P<digest>[0-9a-f]{64})  (?P<name>[^/\\]+\.py)")


def digest(path: Path) -> str:
    # Line endings normalised, so a Windows checkout (autocrlf) hashes as the repository does.
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def manifest() -> list[tuple[str, str]]:
    entries = []
    for number, line in enumerate(MANIFEST.read_text().splitlines(), 1):
        match = LINE.fullmatch(line)
        assert match, f"{MANIFEST.name} line {number} is not '<sha256>  <file name>': {line!r}"
        entries.append((match["name"], match["digest"]))
    return entries


def revision_files() -> list[Path]:
    return sorted(VERSIONS.glob("*.py"))


def test_manifest_lists_each_file_once():
    names = [name for name, _ in manifest()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"{MANIFEST.name} lists these files more than once: {repeated}"


def test_listed_revisions_are_unchanged():
    problems = []
    for name, expected in manifest():
        path = VERSIONS / name
        if not path.exists():
            problems.append(f"{name}: listed but gone (a landed revision is never removed)")
        elif digest(path) != expected:
            problems.append(f"{name}: changed since it landed")
    assert not problems, (
        "Landed migrations were edited; write a new revision instead "
        "(`flask db revision` / `flask db migrate`) and restore these files:\n  "
        + "\n  ".join(problems)
    )


def test_every_revision_is_listed():
    listed = {name for name, _ in manifest()}
    new = [path for path in revision_files() if path.name not in listed]
    assert not new, (
        f"New revision files are not listed in migrations/{MANIFEST.name}. Once the revision "
        "is final, append these lines to it (and never edit the revision afterwards):\n"
        + "".join(f"{digest(path)}  {path.name}\n" for path in new)
    )
