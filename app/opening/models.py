"""Opening ceremony rows. Nothing here is a secret in clear: `ShareUnlock.sealed_share` is a
custodian's share re-encrypted under a key the database does not hold (see
`app.opening.operations`), and it is cleared when the opening completes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class OpeningStatus(StrEnum):
    UNLOCKING = "unlocking"  # waiting for k custodians
    OPENING = "opening"  # k shares in, the job is (or will be) opening the envelopes
    COMPLETED = "completed"
    FAILED = "failed"  # fewer than min_bids envelopes: nothing opened


class LineStatus(StrEnum):
    OPENED = "opened"
    REVOKED = "revoked"  # the bidder's fault: malformed, wrong key, integrity
    WITHDRAWN = "withdrawn"  # the platform's fault: stored bytes differ, blob missing


class OpeningSession(db.Model):
    __tablename__ = "opening_session"

    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), primary_key=True)
    started_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=OpeningStatus.UNLOCKING)
    # Random salt of this ceremony's share-wrapping key (HKDF of the app secret).
    wrap_salt: Mapped[str] = mapped_column(String(64))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    record_document_id: Mapped[int | None] = mapped_column(ForeignKey("tender_document.id"))
    reason: Mapped[str] = mapped_column(Text, default="")


class ShareUnlock(db.Model):
    __tablename__ = "share_unlock"
    __table_args__ = (UniqueConstraint("tender_id", "custodian_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("opening_session.tender_id"), index=True)
    custodian_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    unlocked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # AES-256-GCM under the ceremony's wrapping key; NULL once the opening is done.
    sealed_share: Mapped[str | None] = mapped_column(Text)


class OpeningLine(db.Model):
    __tablename__ = "opening_line"
    __table_args__ = (UniqueConstraint("tender_id", "bid_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    bid_id: Mapped[int] = mapped_column(ForeignKey("bid.id"))
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    price: Mapped[str | None] = mapped_column(String(64))
    commercial: Mapped[str | None] = mapped_column(Text)  # canonical JSON of the fields
    envelope_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objection: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
