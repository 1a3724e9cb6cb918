"""Evaluation records and the signing certificates of the platform CA.

Each signature makes a new version of the PDF (an incremental update); every version is
kept in the blob store and `RecordSignature.sha256` names it, so the chain of versions can
be checked. A private key is stored only encrypted (see `app.records.signing`), and only for
the platform and the older server-held members' certificates: a member who enrolled a key in
their browser holds it alone (`app.records.member_keys`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class RecordStatus(StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    SIGNED = "signed"  # signed by the platform; members countersign
    COMPLETE = "complete"  # every panel member countersigned
    FAILED = "failed"
    SUPERSEDED = "superseded"  # replaced by a re-evaluation's record (kept, marked)


class EvaluationRecord(db.Model):
    __tablename__ = "evaluation_record"
    __table_args__ = (UniqueConstraint("tender_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=RecordStatus.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent, for the staff page
    step: Mapped[str] = mapped_column(String(64), default="")  # what the job is doing
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The current (latest signed) version of the PDF, a tender document.
    document_id: Mapped[int | None] = mapped_column(ForeignKey("tender_document.id"))
    scoring_sha256: Mapped[str | None] = mapped_column(String(64))  # the embedded file's hash
    audit_head: Mapped[str | None] = mapped_column(String(64))  # chain head when signed
    pages: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_reason: Mapped[str] = mapped_column(Text, default="")


class RecordSignature(db.Model):
    __tablename__ = "record_signature"
    __table_args__ = (UniqueConstraint("record_id", "signer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("evaluation_record.id"), index=True)
    signer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))  # NULL: platform
    certificate_id: Mapped[int] = mapped_column(ForeignKey("signing_certificate.id"))
    field_name: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))  # the PDF version this signature made
    size: Mapped[int] = mapped_column(Integer)


class SigningCertificate(db.Model):
    """A certificate issued by the platform CA: the platform's document-signing certificate
    (user_id NULL), an older server-held member certificate (its private key kept encrypted
    in `sealed_key`) or a member-held one (`sealed_key` empty: the key never left the
    member's browser). Revoked certificates are listed in the CA's CRL."""

    __tablename__ = "signing_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    serial: Mapped[str] = mapped_column(String(64), unique=True)  # hex
    certificate_pem: Mapped[str] = mapped_column(Text)
    sealed_key: Mapped[str] = mapped_column(Text)  # the private key, encrypted
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeyEnrolmentNonce(db.Model):
    """A one-time challenge for enrolling a member-held signing key: the browser signs it
    (with the account id and the public key) to prove it holds the private key."""

    __tablename__ = "key_enrolment_nonce"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PendingCountersignature(db.Model):
    """A countersignature prepared by the server and waiting for the member's browser to
    sign its CMS signed attributes: the prepared PDF (placeholder reserved) is a blob,
    `signed_attrs` the DER the member signs, `document_digest` and the reserved region are
    what pyHanko needs to finish the file."""

    __tablename__ = "pending_countersignature"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("evaluation_record.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    certificate_id: Mapped[int] = mapped_column(ForeignKey("signing_certificate.id"))
    base_sha256: Mapped[str] = mapped_column(String(64))  # the version it builds on
    prepared_sha256: Mapped[str] = mapped_column(String(64))  # blob of the prepared PDF
    signed_attrs: Mapped[bytes] = mapped_column(LargeBinary)
    document_digest: Mapped[str] = mapped_column(String(128))  # hex
    region_start: Mapped[int] = mapped_column(Integer)
    region_end: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
