"""The verification bundle's manifest: the SHA-256 of every file of a tender's verification
bundle, signed by the platform's Ed25519 key (``fairbid-verification-bundle``, signed like
receipts: ``format NUL canonical_json(manifest)``), stored as ``MANIFEST.json`` beside the
files. ``python -m bidding verify-bundle DIR --platform-key KEY.pem`` checks that every listed
file is there, unaltered, and that no other file was added; the other commands of the
bundle's ``VERIFY.md`` then check each file's own signatures and links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import is_hex_sha256, is_identifier
from .errors import BundleError
from .receipts import check_signature, load_document, sign_document

BUNDLE_FORMAT = "fairbid-verification-bundle"
MANIFEST_NAME = "MANIFEST.json"
_WHAT = "bundle manifest"


def safe_name(name: object) -> bool:
    """A relative POSIX path inside the bundle (no absolute path, no `..`, no backslash)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name != MANIFEST_NAME


def sign_manifest(
    tender: str, reference: str, files: Mapping[str, bytes], platform_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """The signed manifest of `files` (name -> content)."""
    body = _body(tender, reference, files)
    _check_body(body, ValueError)
    return sign_document(BUNDLE_FORMAT, "manifest", body, platform_key)


def _body(tender: str, reference: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "tender": tender,
        "reference": reference,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def _check_body(body: Mapping[str, Any], error: type[Exception]) -> None:
    if set(body) != {"tender", "reference", "files"}:
        raise error("malformed manifest: fields must be tender, reference, files")
    if not is_identifier(body["tender"]) or not isinstance(body["reference"], str):
        raise error("malformed manifest: invalid tender id or reference")
    files = body["files"]
    if not isinstance(files, Mapping) or not files:
        raise error("malformed manifest: files must be a non-empty object")
    for name, digest in files.items():
        if not safe_name(name) or not is_hex_sha256(digest):
            raise error(f"malformed manifest: entry {str(name)[:60]!r}")


@dataclass(frozen=True)
class BundleSummary:
    tender: str
    reference: str
    files: int


def verify_bundle(directory: Path, platform_public_key: Ed25519PublicKey) -> BundleSummary:
    """Check `directory`'s MANIFEST.json signature and every file against it; refuse missing,
    altered and unlisted files. Raises BundleError naming the first problem."""
    manifest_path = directory / MANIFEST_NAME
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"no readable {MANIFEST_NAME} in {directory}") from exc
    doc, body = load_document(raw, BUNDLE_FORMAT, "manifest", _WHAT, BundleError)
    _check_body(body, BundleError)
    check_signature(doc, BUNDLE_FORMAT, body, platform_public_key, _WHAT, BundleError)
    listed = body["files"]
    for name, digest in sorted(listed.items()):
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{name}: listed in the manifest but missing") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise BundleError(f"{name}: altered (its SHA-256 is not the one the platform signed)")
    present = {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path != manifest_path
    }
    extra = sorted(present - set(listed))
    if extra:
        raise BundleError(f"{extra[0]}: not part of the signed bundle")
    return BundleSummary(body["tender"], body["reference"], len(listed))
