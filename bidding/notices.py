"""Signed public notices: the candidates notice, the award notice, the failure notice and the
cancellation notice of a tender, each published as a document signed by the platform's
Ed25519 key like the sealing and opening records, so a copy can be checked offline:
``python -m bidding verify-notice NOTICE.json --platform-key KEY.pem``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .canonical import is_identifier
from .errors import NoticeError
from .receipts import check_signature, load_document, sign_document

NOTICE_FORMAT = "fairbid-result-notice"
KINDS = frozenset({"candidates", "award", "failed", "cancelled"})
_REQUIRED = {"tender", "reference", "notice", "kind", "published_at", "content"}
_WHAT = "notice"


def sign_notice(notice: Mapping[str, Any], platform_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The JSON-ready signed notice (store it with `receipts.dump_document`)."""
    _check_fields(notice, ValueError)
    return sign_document(NOTICE_FORMAT, "notice", dict(notice), platform_key)


def verify_notice(
    document: Mapping[str, Any] | bytes | str, platform_public_key: Ed25519PublicKey
) -> Mapping[str, Any]:
    """Check a signed notice's fields and platform signature; return its body. Raises
    NoticeError."""
    doc, body = load_document(document, NOTICE_FORMAT, "notice", _WHAT, NoticeError)
    _check_fields(body, NoticeError)
    check_signature(doc, NOTICE_FORMAT, body, platform_public_key, _WHAT, NoticeError)
    return body


def _check_fields(notice: Mapping[str, Any], error: type[Exception]) -> None:
    missing = _REQUIRED - set(notice)
    if missing:
        raise error(f"malformed notice: no {', '.join(sorted(missing))}")
    if not is_identifier(notice["tender"]):
        raise error("malformed notice: invalid tender id")
    if notice["kind"] not in KINDS:
        raise error(f"malformed notice: unknown kind {str(notice['kind'])[:20]!r}")
