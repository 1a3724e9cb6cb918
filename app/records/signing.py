"""PDF signing for records and letters: the platform CA, its certificates, PAdES signatures.

Development and tests generate, on first use under `PLATFORM_KEY_DIR` (default
`<instance>/keys`, like the receipt key), a development CA (self-signed root, EC P-256) and
the platform's document-signing certificate issued by it; the private keys are PEM files
with mode 0600, created under a file lock so several workers end up with the same ones.

Production configures files instead (never generated there):

- `FAIRBID_SIGNING_KEY`, `FAIRBID_SIGNING_CERT`: the platform's document-signing key (PEM,
  PKCS#8, unencrypted, readable only by the service account) and certificate;
- `FAIRBID_SIGNING_CHAIN`: PEM certificates from the issuer up to the root; the last
  certificate of the file (the root) is the trust anchor of `validate_pdf`;
- `FAIRBID_SIGNING_CA_CERT`, `FAIRBID_SIGNING_CA_KEY`: the CA that issues panel members'
  certificates (without them members cannot countersign);
- `FAIRBID_TSA_URL` (any environment): an RFC 3161 time-stamping authority; when set, every
  signature gets a signature time-stamp and the document a PAdES-LTA document time-stamp.

Panel members countersign with a key they hold in their browser (`app.records.member_keys`:
enrolment, pyHanko's interrupted signing); the server never holds it. The older server-held
path remains only for older records, tests and the drill (`sign_pdf(signer=user)`,
`operations.countersign`): one certificate per member from the platform CA
(`member_certificate`, issued on first use), its private key only in
`SigningCertificate.sealed_key`, encrypted with AES-256-GCM under a key derived with
HKDF-SHA256 from the app's SECRET_KEY and a random salt (the certificate serial is the
associated data). A key that no longer unseals (SECRET_KEY rotated) revokes the certificate
and a new one is issued. Enrolling a held key revokes the server-held certificate.

Revoked certificates are listed in the CA's CRL (`revocation_list`, published at
/api/v1/platform/signing-ca.crl); `validate_pdf` reads it, so a signature made after its
certificate was revoked is not trusted.

Signatures are PAdES (SubFilter ETSI.CAdES.detached, SHA-256), incremental, with validation
information embedded and a visible stamp drawn with an embedded TrueType font (the default
stamp font is not embedded, which breaks PDF/A).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import functools
import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID
from flask import current_app
from pyhanko.keys import load_private_key_from_pemder_data
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.signers import constants as signer_constants
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select

from app.accounts.models import User
from app.core.types import utcnow
from app.extensions import db
from app.records.models import SigningCertificate
from evaluation.pdf import SignatureStatus, outside_event_loop, validate_signatures

__all__ = [
    "PdfsigReport",
    "SignatureStatus",
    "SigningNotConfigured",
    "member_certificate",
    "pdfsig_report",
    "platform_ca",
    "platform_certificate",
    "platform_signer",
    "revocation_list",
    "sign_pdf",
    "signatures_ok",
    "stamp_font_path",
    "trust_roots_pem",
    "validate_pdf",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

CA_KEY_FILENAME = "signing-ca.key.pem"
CA_CERT_FILENAME = "signing-ca.cert.pem"
PLATFORM_KEY_FILENAME = "signing-platform.key.pem"
PLATFORM_CERT_FILENAME = "signing-platform.cert.pem"
_GENERATE_IN = frozenset({"development", "testing"})
_SEAL_INFO = b"fairbid-signing-key-seal-v1\x00"
_SEAL_PREFIX = "v1:"
MEMBER_CERT_DAYS = 3 * 365
_lock = threading.Lock()
_cache: dict[str, object] = {}

# Stamp grid on the page that carries the signatures (A4 in points): three per row from
# the top of the lower two thirds of the page, rows going down.
_STAMP_W, _STAMP_H, _STAMP_GAP = 165, 62, 10
_STAMP_LEFT, _STAMP_TOP = 42, 560
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
# For stamps with Korean or Chinese text (signers' names): Noto Sans CJK from fonts-noto-cjk,
# a collection; "#n" names the face (1: KR, 2: SC).
_CJK_COLLECTIONS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
_CJK_FACE_KR, _CJK_FACE_SC = 1, 2


class SigningNotConfigured(RuntimeError):
    """Production without the signing certificate, key or CA that an operation needs."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate (cryptography object) and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | object

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


# --- key files ---------------------------------------------------------------------------


def _key_dir() -> Path:
    directory = current_app.config.get("PLATFORM_KEY_DIR") or Path(current_app.instance_path) / (
        "keys"
    )
    return Path(directory)


def _may_generate() -> bool:
    return current_app.config.get("ENV_NAME") in _GENERATE_IN


def _configured(name: str) -> str:
    return str(current_app.config.get(name) or "")


def platform_ca() -> KeyPair:
    """The CA that issues the platform's and the panel members' signing certificates."""
    cert_path, key_path = (
        _configured("FAIRBID_SIGNING_CA_CERT"),
        _configured("FAIRBID_SIGNING_CA_KEY"),
    )
    if cert_path and key_path:
        return _load_pair(Path(cert_path), Path(key_path))
    if not _may_generate():
        raise SigningNotConfigured(
            "The platform signing CA is not configured: set FAIRBID_SIGNING_CA_CERT and "
            "FAIRBID_SIGNING_CA_KEY (PEM) to issue panel members' certificates."
        )
    directory = _key_dir()
    _ensure_development_keys(directory)
    return _load_pair(directory / CA_CERT_FILENAME, directory / CA_KEY_FILENAME)


def platform_signer() -> KeyPair:
    """The platform's document-signing certificate and key."""
    cert_path, key_path = _configured("FAIRBID_SIGNING_CERT"), _configured("FAIRBID_SIGNING_KEY")
    if cert_path and key_path:
        return _load_pair(Path(cert_path), Path(key_path))
    if not _may_generate():
        raise SigningNotConfigured(
            "The platform signing certificate is not configured: set FAIRBID_SIGNING_CERT, "
            "FAIRBID_SIGNING_KEY and FAIRBID_SIGNING_CHAIN (PEM files)."
        )
    directory = _key_dir()
    _ensure_development_keys(directory)
    return _load_pair(directory / PLATFORM_CERT_FILENAME, directory / PLATFORM_KEY_FILENAME)


def chain_certificates() -> list[x509.Certificate]:
    """The platform signing certificate's issuers, up to and including the root."""
    chain_path = _configured("FAIRBID_SIGNING_CHAIN")
    if chain_path and _configured("FAIRBID_SIGNING_CERT"):
        return x509.load_pem_x509_certificates(Path(chain_path).read_bytes())
    return [platform_ca().certificate]


def trust_roots() -> list[x509.Certificate]:
    """The trust anchors for validation: the root of the platform chain and the CA that
    issues members' certificates (the same in development)."""
    roots: list[x509.Certificate] = []
    chain = chain_certificates()
    if chain:
        roots.append(chain[-1])
    with contextlib.suppress(SigningNotConfigured):
        roots.append(platform_ca().certificate)
    unique: dict[bytes, x509.Certificate] = {}
    for certificate in roots:
        unique.setdefault(certificate.fingerprint(hashes.SHA256()), certificate)
    return list(unique.values())


def trust_roots_pem() -> bytes:
    """The trust anchors as PEM (e.g. `platform-signing-cert.pem` for the drill's output)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in trust_roots())


def _load_pair(cert_path: Path, key_path: Path) -> KeyPair:
    cache_key = f"{cert_path}|{key_path}"
    pair = _cache.get(cache_key)
    if isinstance(pair, KeyPair):
        return pair
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    pair = KeyPair(certificate, key)
    _cache[cache_key] = pair
    return pair


@contextlib.contextmanager
def _file_lock(directory: Path) -> Iterator[None]:
    with _lock, open(directory / ".signing.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# Signatures are validated at their own signing time (`validate_pdf`), and the drill signs on
# its backdated clock (weeks before the real now): the generated development CA and platform
# certificate are valid from a year before they were made. Production configures its own.
DEVELOPMENT_BACKDATE = dt.timedelta(days=366)


def _ensure_development_keys(directory: Path) -> None:
    if (directory / PLATFORM_CERT_FILENAME).exists() and (directory / CA_CERT_FILENAME).exists():
        return
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _file_lock(directory):
        if not (directory / CA_CERT_FILENAME).exists():
            ca_key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fairbid (development)"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Fairbid development signing CA"),
                ]
            )
            ca_cert = _build_certificate(
                subject=name, issuer=name, public_key=ca_key.public_key(), issuer_key=ca_key,
                days=10 * 365, ca=True, backdate=DEVELOPMENT_BACKDATE,
            )  # fmt: skip
            _write_private(directory / CA_KEY_FILENAME, _key_pem(ca_key))
            _write_public(directory / CA_CERT_FILENAME, _cert_pem(ca_cert))
            log.info("generated the development signing CA (serial %x)", ca_cert.serial_number)
            (directory / PLATFORM_CERT_FILENAME).unlink(missing_ok=True)
        if not (directory / PLATFORM_CERT_FILENAME).exists():
            ca = x509.load_pem_x509_certificate((directory / CA_CERT_FILENAME).read_bytes())
            ca_key = serialization.load_pem_private_key(
                (directory / CA_KEY_FILENAME).read_bytes(), password=None
            )
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = _build_certificate(
                subject=x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fairbid (development)"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Fairbid platform"),
                    ]
                ),
                issuer=ca.subject,
                public_key=key.public_key(),
                issuer_key=ca_key,
                days=5 * 365,
                backdate=DEVELOPMENT_BACKDATE,
            )
            _write_private(directory / PLATFORM_KEY_FILENAME, _key_pem(key))
            _write_public(directory / PLATFORM_CERT_FILENAME, _cert_pem(certificate))
            log.info("generated the development platform signing certificate")
    _cache.clear()


def _write_private(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_public(path: Path, data: bytes) -> None:
    _write_private(path, data)
    os.chmod(path, 0o644)


def _key_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _build_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    issuer_key: object,
    days: int,
    ca: bool = False,
    backdate: dt.timedelta = dt.timedelta(minutes=5),
) -> x509.Certificate:
    now = utcnow().replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()  # type: ignore[attr-defined]
            ),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


# --- the platform's and members' certificate rows ----------------------------------------


def platform_certificate() -> SigningCertificate:
    """The `SigningCertificate` row of the platform's certificate (user NULL), added to the
    session on first use (its key stays in its file: `sealed_key` is empty)."""
    pair = platform_signer()
    serial = format(pair.certificate.serial_number, "x")
    row = db.session.scalar(select(SigningCertificate).where(SigningCertificate.serial == serial))
    if row is None:
        row = SigningCertificate(
            user_id=None,
            subject=pair.certificate.subject.rfc4514_string()[:300],
            serial=serial,
            certificate_pem=pair.certificate_pem.decode("ascii"),
            sealed_key="",
            issued_at=utcnow(),
            not_after=pair.certificate.not_valid_after_utc,
        )
        db.session.add(row)
        db.session.flush()
    return row


def member_certificate(user: User) -> SigningCertificate:
    """The panel member's server-held signing certificate (the older path, kept for older
    records and tests; members now sign with a key they hold, `app.records.member_keys`),
    issued by the platform CA on first use (added to the caller's session, never committed
    here)."""
    now = utcnow()
    row = db.session.scalar(
        select(SigningCertificate)
        .where(
            SigningCertificate.user_id == user.id,
            SigningCertificate.sealed_key != "",
            SigningCertificate.revoked_at.is_(None),
            SigningCertificate.not_after > now + dt.timedelta(days=1),
        )
        .order_by(SigningCertificate.id.desc())
        .limit(1)
    )
    if row is not None:
        return row
    ca = platform_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    name = user.full_name.strip() or f"User {user.id}"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fairbid"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Evaluation panel"),
            x509.NameAttribute(NameOID.COMMON_NAME, name[:64]),
            x509.NameAttribute(NameOID.USER_ID, str(user.id)),
        ]
    )
    certificate = _build_certificate(
        subject=subject,
        issuer=ca.certificate.subject,
        public_key=key.public_key(),
        issuer_key=ca.key,
        days=MEMBER_CERT_DAYS,
    )
    serial = format(certificate.serial_number, "x")
    row = SigningCertificate(
        user_id=user.id,
        subject=subject.rfc4514_string()[:300],
        serial=serial,
        certificate_pem=_cert_pem(certificate).decode("ascii"),
        sealed_key=_seal_key(serial, _key_pem(key)),
        issued_at=now,
        not_after=certificate.not_valid_after_utc,
    )
    db.session.add(row)
    db.session.flush()
    log.info("issued a signing certificate (serial %s) to user %s", serial, user.id)
    return row


def _seal_secret(salt: bytes) -> bytes:
    secret = current_app.config["SECRET_KEY"]
    ikm = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_SEAL_INFO).derive(ikm)


def _seal_key(serial: str, key_pem: bytes) -> str:
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_seal_secret(salt)).encrypt(nonce, key_pem, serial.encode("ascii"))
    return _SEAL_PREFIX + base64.b64encode(salt + nonce + sealed).decode("ascii")


def _unseal_key(row: SigningCertificate) -> bytes:
    if not row.sealed_key.startswith(_SEAL_PREFIX):
        raise ValueError("unknown sealed key format")
    raw = base64.b64decode(row.sealed_key[len(_SEAL_PREFIX) :])
    salt, nonce, sealed = raw[:16], raw[16:28], raw[28:]
    return AESGCM(_seal_secret(salt)).decrypt(nonce, sealed, row.serial.encode("ascii"))


def _member_key_pair(user: User) -> tuple[SigningCertificate, bytes]:
    row = member_certificate(user)
    try:
        return row, _unseal_key(row)
    except (InvalidTag, ValueError):
        # SECRET_KEY rotated (or the row was tampered with): this key is lost for good.
        log.warning("signing key of certificate %s does not unseal; reissuing", row.serial)
        row.revoked_at = utcnow()
        db.session.flush()
        row = member_certificate(user)
        return row, _unseal_key(row)


# --- signing -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def stamp_font_path() -> str:
    """A TrueType font present on this system for the visible stamp (embedded, subset)."""
    configured = os.environ.get("FAIRBID_STAMP_FONT", "")
    for candidate in (configured, *_FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "No TrueType font for signature stamps: install fonts-dejavu-core or set "
        "FAIRBID_STAMP_FONT to a .ttf file."
    )


@functools.lru_cache(maxsize=2)
def _font_bytes(path: str) -> bytes:
    """The font, rescaled to 1000 units per em when it has another grid: pyHanko 0.38
    writes the glyph widths (/W) in font units, which PDF reads as thousandths of an em, so
    a 2048-unit font like DejaVu Sans would come out letter-spaced and with widths that
    disagree with the embedded program (a PDF/A violation)."""
    from fontTools.ttLib import TTCollection, TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    if "#" in path:  # one face of a collection, as a font file of its own
        collection, face = path.rsplit("#", 1)
        out = io.BytesIO()
        TTCollection(collection).fonts[int(face)].save(out)
        data = out.getvalue()
    else:
        data = Path(path).read_bytes()
    with TTFont(io.BytesIO(data)) as font:
        if font["head"].unitsPerEm == 1000:
            return data
        scale_upem(font, 1000)
        out = io.BytesIO()
        font.save(out)
        return out.getvalue()


class _InMemoryFontFactory(GlyphAccumulatorFactory):
    """pyHanko's factory opens the font file and never closes it (a ResourceWarning per
    signature); this one reads the file once and hands the engine an in-memory copy."""

    def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(_font_bytes(self.font_file)),
            font_size=self.font_size,
            obj_stream=obj_stream,
        )


@functools.lru_cache(maxsize=4)
def _font_coverage(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    if "#" in path:
        collection, face = path.rsplit("#", 1)
        with TTFont(collection, fontNumber=int(face), lazy=True) as font:
            return frozenset(font.getBestCmap())
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def _stamp_font_for(text: str) -> str:
    """The Latin stamp font when it covers the text; otherwise a Noto Sans CJK face (Korean
    when the text has Hangul, Simplified Chinese else) when fonts-noto-cjk is installed."""
    latin = stamp_font_path()
    needed = {ord(c) for c in text if c != "\n"}
    if needed <= _font_coverage(latin):
        return latin
    collection = next((c for c in _CJK_COLLECTIONS if Path(c).is_file()), None)
    if collection is None:
        return latin
    hangul = any(0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF for code in needed)
    return f"{collection}#{_CJK_FACE_KR if hangul else _CJK_FACE_SC}"


def _printable(text: str, font: str) -> str:
    """Characters the stamp font lacks are replaced (they would otherwise be drawn as
    empty boxes)."""
    covered = _font_coverage(font)
    return "".join(c if ord(c) in covered or c == "\n" else "?" for c in text)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def validation_context(*, for_signing: bool = False) -> ValidationContext:
    """Trust the platform roots only; no network (our CA publishes no CRL or OCSP)."""
    return ValidationContext(
        trust_roots=[_asn1(c) for c in trust_roots()],
        other_certs=[_asn1(c) for c in chain_certificates()],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )


def _timestamper():
    url = _configured("FAIRBID_TSA_URL")
    if not url:
        return None
    try:
        from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
    except ImportError:
        try:
            from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
        except ImportError:
            raise SigningNotConfigured(
                "FAIRBID_TSA_URL is set but pyHanko has no HTTP client here: install "
                "`requests` (or `aiohttp`) to reach the time-stamping authority."
            ) from None
        return HTTPTimeStamper(url)
    return RequestsHTTPTimeStamper(url, timeout=15)


def _existing_signature_count(pdf_bytes: bytes) -> int:
    reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
    return sum(1 for _ in fields.enumerate_sig_fields(reader, filled_status=None))


class PdfA3Signer(signers.PdfSigner):
    """pyHanko's signer, kept consistent with the PDF/A-3B file it signs:

    - PDF/A-3 is PDF 1.7: only the PAdES extension (ESIC) is registered. pyHanko would
      register ISO/TS 32002 for ECDSA keys and raise the catalog's /Version to 2.0, which
      contradicts the PDF/A-3 identification (ECDSA signatures are PAdES's own, in PDF 1.7).
    - The signing time (the signature's /M, the CMS signing-time attribute and the stamp's
      `%(ts)s`) is the platform's clock (`utcnow()`), the clock every other moment of the
      record is read from (the drill's simulated clock included), not the machine's.
    """

    def register_extensions(self, pdf_out, *, md_algorithm: str) -> None:
        if self.signature_meta.subfilter == fields.SigSeedSubFilter.PADES:
            pdf_out.ensure_output_version(version=(1, 7))
            pdf_out.register_extension(signer_constants.ESIC_EXTENSION_1)

    def init_signing_session(self, pdf_out, existing_fields_only=False):
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = utcnow().replace(microsecond=0)
        return session


def stamp_box(index: int) -> tuple[int, int, int, int]:
    """The rectangle (x1, y1, x2, y2, in points) of the index-th stamp on its page."""
    row, column = divmod(index, 3)
    x1 = _STAMP_LEFT + column * (_STAMP_W + _STAMP_GAP)
    y2 = _STAMP_TOP - row * (_STAMP_H + _STAMP_GAP)
    return (x1, y2 - _STAMP_H, x1 + _STAMP_W, y2)


def sign_pdf(
    pdf_bytes: bytes,
    *,
    signer: Literal["platform"] | User,
    field_name: str,
    reason: str,
    visible: bool = True,
    stamp_text: str | None = None,
    on_page: int = -1,
    box: tuple[int, int, int, int] | None = None,
    location: str | None = None,
) -> bytes:
    """Sign a PDF incrementally (PAdES B-B, or B-LTA with `FAIRBID_TSA_URL`) and return the
    new version. `signer` is "platform" or a panel member (their certificate is issued on
    first use, inside the caller's transaction). The visible stamp goes to `box` on page
    `on_page` (default: the last page, in a grid of three per row below two thirds of the
    page, by the number of signature fields already present); `stamp_text` may use
    `%(signer)s` and `%(ts)s`."""
    if signer == "platform":
        pair = platform_signer()
        certificate, key_pem, signer_name = pair.certificate, _key_pem(pair.key), "Fairbid"
    elif isinstance(signer, User):
        row, key_pem = _member_key_pair(signer)
        certificate = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
        signer_name = signer.full_name
    else:
        raise TypeError("signer must be 'platform' or a User")
    chain = chain_certificates() if signer == "platform" else [platform_ca().certificate]
    cms_signer = signers.SimpleSigner(
        signing_cert=_asn1(certificate),
        signing_key=load_private_key_from_pemder_data(key_pem, passphrase=None),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in chain]),
    )
    pdf_signer = build_pdf_signer(
        pdf_bytes,
        cms_signer,
        signer_name=signer_name,
        field_name=field_name,
        reason=reason,
        visible=visible,
        stamp_text=stamp_text,
        on_page=on_page,
        box=box,
        location=location,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes), strict=False)
    out = io.BytesIO()
    outside_event_loop(lambda: pdf_signer.sign_pdf(writer, output=out))
    return out.getvalue()


def build_pdf_signer(
    pdf_bytes: bytes,
    cms_signer: signers.Signer,
    *,
    signer_name: str,
    field_name: str,
    reason: str,
    visible: bool = True,
    stamp_text: str | None = None,
    on_page: int = -1,
    box: tuple[int, int, int, int] | None = None,
    location: str | None = None,
) -> signers.PdfSigner:
    """pyHanko's `PdfSigner` for one signature of ours (PAdES, SHA-256, validation info in
    the signature's revision, the visible stamp): the same for a key the server holds
    (`sign_pdf`) and for the interrupted flow of a member-held key (`member_keys`)."""
    timestamper = _timestamper()
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        reason=reason,
        location=location,
        name=signer_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        embed_validation_info=True,
        use_pades_lta=timestamper is not None,
        validation_context=validation_context(for_signing=True),
        # The validation info goes into the signature's own revision: nothing follows the
        # last signature (without a TSA), so verifiers report the whole file as signed.
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE,
            include_vri=False,
        ),
    )
    field_spec = None
    stamp_style = None
    if visible:
        index = _existing_signature_count(pdf_bytes)
        field_spec = fields.SigFieldSpec(
            sig_field_name=field_name, on_page=on_page, box=box or stamp_box(index)
        )
        text = stamp_text or "%(signer)s\n%(reason)s\n%(ts)s"
        text = text.replace("%(signer)s", signer_name).replace("%(reason)s", reason)
        font = _stamp_font_for(text.replace("%(ts)s", ""))
        stamp_style = TextStampStyle(
            stamp_text=_printable(text, font),
            text_box_style=TextBoxStyle(font=_InMemoryFontFactory(font, font_size=8), font_size=8),
            border_width=1,
            timestamp_format="%Y-%m-%d %H:%M:%S UTC",
        )
    else:
        field_spec = fields.SigFieldSpec(sig_field_name=field_name, on_page=on_page)
    return PdfA3Signer(
        metadata,
        cms_signer,
        timestamper=timestamper,
        stamp_style=stamp_style,
        new_field_spec=field_spec,
    )


# --- validation ----------------------------------------------------------------------------


def validate_pdf(pdf_bytes: bytes) -> list[SignatureStatus]:
    """Every embedded signature validated with pyHanko, the platform roots as trust anchors
    and the platform CA's current CRL (`evaluation.pdf.validate_signatures`, which
    `python -m evaluation verify` uses too): a signature made after its certificate was
    revoked is not trusted. A PDF that cannot be parsed raises `ValueError`."""
    crls = []
    with contextlib.suppress(SigningNotConfigured):
        crls.append(asn1_crl.CertificateList.load(revocation_list_der()))
    return validate_signatures(
        pdf_bytes,
        [_asn1(c) for c in trust_roots()],
        [_asn1(c) for c in chain_certificates()],
        crls,
    )


# --- revocation ----------------------------------------------------------------------------

CRL_VALIDITY = dt.timedelta(days=1)


def revocation_list() -> x509.CertificateRevocationList:
    """The platform CA's CRL, made now: every certificate it issued that was revoked (a
    member's lost key, a server-held key retired when the member enrolled their own, a key
    that no longer unseals), with its revocation time. Valid for a day; published at
    /api/v1/platform/signing-ca.crl. Raises `SigningNotConfigured` without the CA."""
    ca = platform_ca()
    now = utcnow().replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()  # type: ignore[attr-defined]
            ),
            critical=False,
        )
    )
    rows = db.session.scalars(
        select(SigningCertificate)
        .where(SigningCertificate.revoked_at.is_not(None))
        .order_by(SigningCertificate.id)
    )
    for row in rows:
        certificate = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
        if certificate.issuer != ca.certificate.subject:
            continue
        revoked_at = row.revoked_at.replace(microsecond=0)
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(revoked_at)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]


CRL_PATH = "/api/v1/platform/signing-ca.crl"


def crl_distribution_point() -> x509.CRLDistributionPoints:
    """Where the CA's CRL is published, for the certificates it issues to members: a
    validator checks revocation only for certificates that name a CRL (pyHanko's soft-fail
    mode), and reads the copy it is given (`--crl`) instead of fetching it."""
    base = str(current_app.config.get("PUBLIC_URL") or "http://localhost").rstrip("/")
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(base + CRL_PATH)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def revocation_list_der() -> bytes:
    return revocation_list().public_bytes(serialization.Encoding.DER)


def revocation_list_pem() -> bytes:
    return revocation_list().public_bytes(serialization.Encoding.PEM)


def signatures_ok(pdf_bytes: bytes, expected: int | None = None) -> bool:
    """True when the PDF parses, has signatures (`expected` of them, if given), and every
    one is intact, valid and trusted with nothing but validation data after the last."""
    try:
        statuses = validate_pdf(pdf_bytes)
    except ValueError:
        return False
    if not statuses or (expected is not None and len(statuses) != expected):
        return False
    return all(status.ok for status in statuses) and statuses[-1].coverage == "ENTIRE_FILE"


# --- poppler's pdfsig (tests, drill) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PdfsigReport:
    returncode: int
    text: str

    @property
    def signature_count(self) -> int:
        return sum(1 for line in self.text.splitlines() if line.startswith("Signature #"))

    @property
    def valid_count(self) -> int:
        return self.text.count("Signature Validation: Signature is Valid.")

    @property
    def trusted_count(self) -> int:
        return self.text.count("Certificate Validation: Certificate is Trusted.")

    @property
    def whole_file_signed(self) -> bool:
        """The last signature covers the whole file: nothing was appended after it."""
        blocks = self.text.split("Signature #")
        return len(blocks) > 1 and "Total document signed" in blocks[-1]

    @property
    def all_valid(self) -> bool:
        """Every signature valid and trusted, and the last one covering the whole file."""
        count = self.signature_count
        return (
            count > 0
            and self.valid_count == count
            and self.trusted_count == count
            and self.whole_file_signed
        )


def pdfsig_report(pdf_bytes: bytes, roots_pem: bytes | Sequence[bytes]) -> PdfsigReport:
    """Run poppler's `pdfsig` on the PDF with a throw-away NSS database trusting the given
    root(s) (NSS `certutil`). pdfsig exits 0 even for untrusted certificates: read the text
    (`all_valid`)."""
    pdfsig, certutil = shutil.which("pdfsig"), shutil.which("certutil")
    if not pdfsig or not certutil:
        raise RuntimeError("pdfsig (poppler-utils) and certutil (libnss3-tools) are needed")
    pems = [roots_pem] if isinstance(roots_pem, bytes) else list(roots_pem)
    with tempfile.TemporaryDirectory(prefix="fairbid-nss-") as tmp:
        nss = Path(tmp) / "nss"
        nss.mkdir()
        subprocess.run(  # noqa: S603
            [certutil, "-N", "-d", f"sql:{nss}", "--empty-password"],
            check=True, capture_output=True,
        )  # fmt: skip
        index = 0
        for pem in pems:
            for certificate in x509.load_pem_x509_certificates(pem):
                index += 1
                path = Path(tmp) / f"root-{index}.pem"
                path.write_bytes(_cert_pem(certificate))
                subprocess.run(  # noqa: S603
                    [certutil, "-A", "-d", f"sql:{nss}", "-n", f"root-{index}", "-t", "CT,C,C",
                     "-i", str(path)],
                    check=True, capture_output=True,
                )  # fmt: skip
        document = Path(tmp) / "document.pdf"
        document.write_bytes(pdf_bytes)
        result = subprocess.run(  # noqa: S603
            [pdfsig, "-nssdir", f"sql:{nss}", str(document)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    return PdfsigReport(result.returncode, result.stdout + result.stderr)
