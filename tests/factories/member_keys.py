"""A panel member's own key as the browser holds it (member_key.js: WebCrypto P-256, raw
r||s signatures), played in Python by tests, and enrolment through the operations."""

from __future__ import annotations

import pyotp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.records import member_keys


class BrowserKey:
    """What member_key.js does with WebCrypto: a P-256 key, raw r||s signatures."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def spki(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def totp_code(user) -> str:
    """A code the server takes: each test step is a new confirmation by the member (the
    step already used is forgotten, as it would be 30 s later)."""
    user.totp_last_step = 0
    return pyotp.TOTP(user.totp_secret).now()


def enrol(user, browser: BrowserKey):
    from app.extensions import db
    from app.records import operations

    nonce = operations.issue_enrolment_nonce(user).nonce
    db.session.commit()
    proof = browser.sign(member_keys.enrolment_message(user.id, nonce, browser.spki))
    certificate = operations.enrol_signing_key(user, totp_code(user), browser.spki, nonce, proof)
    db.session.commit()
    return certificate, nonce
