"""Panel members' own signing keys: enrolment, and the interrupted (remote) PDF signature.

The key is an ECDSA P-256 key generated in the member's browser with WebCrypto as
non-extractable and kept in the browser's IndexedDB (`static/js/member_key.js`); the server
never sees the private key.

Enrolment: the browser asks for a one-time nonce, then sends its public key (SPKI, DER,
base64) and a signature, made with that key, of `enrolment_message(account, nonce, spki)`:
proof that it holds the private key. The server checks it and issues a certificate from the
platform CA (`MEMBER_HELD_CERT_DAYS`, key usage digitalSignature + nonRepudiation, subject:
the member's name and account id); every earlier certificate of the member (server-held, or
a lost browser key) is revoked and appears on the CA's CRL.

Signing, with pyHanko's interrupted signing: `prepare_signature` writes the signature field,
appearance and placeholder into a new revision of the PDF, digests the byte range and
builds the CMS signed attributes (PAdES); the browser signs the DER of the signed
attributes (ECDSA with SHA-256: WebCrypto hashes them itself) and returns the raw r||s
value; `finish_signature` converts it to DER, checks it against the member's certificate,
packs the CMS SignedData and fills the placeholder (`PdfTBSDocument.finish_signing`).

Signatures are 64 raw bytes (r||s, WebCrypto's format) everywhere in this module's inputs.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import logging
from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument, PdfTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select

from app.accounts.models import User
from app.core.types import utcnow
from app.extensions import db
from app.records import signing
from app.records.models import SigningCertificate
from evaluation.pdf import outside_event_loop

log = logging.getLogger(__name__)

ENROLMENT_CONTEXT = "fairbid signing-key enrolment v1"
MEMBER_HELD_CERT_DAYS = 90  # short-lived: enrolling again is one click and a code
# An ECDSA P-256 signature in DER is at most 72 bytes; room for it in the size estimate.
_PLACEHOLDER = bytes(80)


class BadSignatureValue(ValueError):
    """A signature value that is not 64 bytes, or does not verify with the member's key."""


def enrolment_message(user_id: int, nonce: str, spki_der: bytes) -> bytes:
    """What the browser signs to enrol: the context, the account, the nonce and the key."""
    spki = base64.b64encode(spki_der).decode("ascii")
    return f"{ENROLMENT_CONTEXT}\naccount={user_id}\nnonce={nonce}\nspki={spki}".encode()


def load_public_key(spki_der: bytes) -> ec.EllipticCurvePublicKey:
    """The member's public key from its SubjectPublicKeyInfo (DER); ValueError unless it is
    an ECDSA P-256 key."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError) as error:
        raise ValueError("not a public key (SubjectPublicKeyInfo, DER)") from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def raw_to_der(signature: bytes) -> bytes:
    """WebCrypto's ECDSA P-256 signature (r||s, 32 bytes each) as the DER that CMS holds."""
    if len(signature) != 64:
        raise BadSignatureValue("an ECDSA P-256 signature is 64 bytes (r||s)")
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A raw r||s signature of `data` (ECDSA, SHA-256), as WebCrypto makes it: for clients
    in Python (the drill's members, tests) that play the browser's part."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """Check a raw r||s signature of `data` (ECDSA, SHA-256); BadSignatureValue if not."""
    try:
        public_key.verify(raw_to_der(signature), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise BadSignatureValue("the signature does not verify with the key") from error


# --- certificates --------------------------------------------------------------------------


def held_certificate(user: User) -> SigningCertificate | None:
    """The member's current certificate for a key they hold (not revoked, not expired)."""
    return db.session.scalar(
        select(SigningCertificate)
        .where(
            SigningCertificate.user_id == user.id,
            SigningCertificate.sealed_key == "",
            SigningCertificate.revoked_at.is_(None),
            SigningCertificate.not_after > utcnow(),
        )
        .order_by(SigningCertificate.issued_at.desc(), SigningCertificate.id.desc())
        .limit(1)
    )


def issue_held_certificate(
    user: User, public_key: ec.EllipticCurvePublicKey
) -> tuple[SigningCertificate, list[SigningCertificate]]:
    """Issue the member a certificate for their own key from the platform CA, and revoke
    every earlier certificate of theirs (returned: the CRL lists them from now on)."""
    ca = signing.platform_ca()
    now = utcnow().replace(microsecond=0)
    revoked = list(
        db.session.scalars(
            select(SigningCertificate).where(
                SigningCertificate.user_id == user.id, SigningCertificate.revoked_at.is_(None)
            )
        )
    )
    for row in revoked:
        row.revoked_at = now
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fairbid panel members"),
            x509.NameAttribute(NameOID.COMMON_NAME, (user.full_name or user.email)[:64]),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"account-{user.id}"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=MEMBER_HELD_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(signing.crl_distribution_point(), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()  # type: ignore[attr-defined]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    row = SigningCertificate(
        user_id=user.id,
        subject=subject.rfc4514_string()[:300],
        serial=format(certificate.serial_number, "x"),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sealed_key="",  # the member holds the key: nothing to seal
        issued_at=now,
        not_after=certificate.not_valid_after_utc,
    )
    db.session.add(row)
    db.session.flush()
    log.info("issued a member-held certificate (serial %s) to user %s", row.serial, user.id)
    return row, revoked


def certificate_of(row: SigningCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))


# --- interrupted signing -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedSignature:
    """The PDF in its final pre-signing state and what finishing it needs."""

    pdf: bytes  # with the placeholder for the CMS object
    signed_attrs: bytes  # DER of the CMS signed attributes: what the member signs
    document_digest: bytes  # SHA-256 of the byte range
    region_start: int
    region_end: int


def _external_signer(row: SigningCertificate, value: bytes) -> signers.ExternalSigner:
    return signers.ExternalSigner(
        signing_cert=signing._asn1(certificate_of(row)),
        cert_registry=SimpleCertificateStore.from_certs(
            [signing._asn1(signing.platform_ca().certificate)]
        ),
        signature_value=value,
    )


def prepare_signature(
    pdf_bytes: bytes,
    row: SigningCertificate,
    *,
    signer_name: str,
    field_name: str,
    reason: str,
    stamp_text: str | None = None,
) -> PreparedSignature:
    """Add the member's signature field, stamp and placeholder to the PDF (a new revision)
    and compute what they sign: the CMS signed attributes over the byte range's digest."""
    external = _external_signer(row, _PLACEHOLDER)
    pdf_signer = signing.build_pdf_signer(
        pdf_bytes,
        external,
        signer_name=signer_name,
        field_name=field_name,
        reason=reason,
        stamp_text=stamp_text,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes), strict=False)

    async def prepare() -> tuple[PreparedByteRangeDigest, bytes, bytes]:
        digest, _tbs, output = await pdf_signer.async_digest_doc_for_signing(writer)
        attrs = await external.signed_attrs(
            digest.document_digest,
            "sha256",
            attr_settings=PdfCMSSignedAttributes(),
            use_pades=True,
        )
        output.seek(0)
        return digest, output.read(), attrs.dump()

    digest, prepared, attrs = outside_event_loop(lambda: asyncio.run(prepare()))
    return PreparedSignature(
        pdf=prepared,
        signed_attrs=attrs,
        document_digest=digest.document_digest,
        region_start=digest.reserved_region_start,
        region_end=digest.reserved_region_end,
    )


def finish_signature(
    prepared: PreparedSignature, row: SigningCertificate, signature: bytes
) -> bytes:
    """Embed the member's signature value (raw r||s over `prepared.signed_attrs`) and return
    the signed PDF. BadSignatureValue when it does not verify with the certificate's key:
    nothing is written then."""
    public_key = certificate_of(row).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise BadSignatureValue("the certificate does not hold an ECDSA key")
    verify_raw(public_key, signature, prepared.signed_attrs)
    external = _external_signer(row, raw_to_der(signature))
    signed_attrs = cms.CMSAttributes.load(prepared.signed_attrs)
    timestamper = signing._timestamper()
    digest = PreparedByteRangeDigest(
        document_digest=prepared.document_digest,
        reserved_region_start=prepared.region_start,
        reserved_region_end=prepared.region_end,
    )
    output = io.BytesIO(prepared.pdf)
    context = signing.validation_context(for_signing=True)

    async def finish() -> None:
        # A signature time-stamp (FAIRBID_TSA_URL) is an unsigned attribute: added here.
        content = await external.async_sign_prescribed_attributes(
            "sha256", signed_attrs, timestamper=timestamper
        )
        await PdfTBSDocument.async_finish_signing(
            output, digest, content, validation_context=context
        )
        if timestamper is not None:  # PAdES-LTA: the document time-stamp after it
            await PdfTimeStamper(timestamper).async_timestamp_pdf(
                IncrementalPdfFileWriter(output, strict=False),
                "sha256",
                context,
                in_place=True,
            )

    outside_event_loop(lambda: asyncio.run(finish()))
    return output.getvalue()
