"""Opening ceremony rows. Nothing here is a secret in clear: `ShareUnlock.sealed_share` is a
custodian's share re-encrypted under a key the database does not hold (see
`app.opening.operations`), and it is cleared when the opening completes. Each opened bid
gets its `EvaluatedBid` (technical code and kept parts), which the evaluation then reads."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
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
    # A tender divided into lots: the lots with fewer than min_bids envelopes, failed at the
    # start and never opened ([{"lot": reference, "received": n, "min_bids": m}]).
    failed_lots: Mapped[list[Any]] = mapped_column(JSON, default=list)


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
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lot.id"))  # None: one lot
    status: Mapped[str] = mapped_column(String(16))
    price: Mapped[str | None] = mapped_column(String(64))
    commercial: Mapped[str | None] = mapped_column(Text)  # canonical JSON of the fields
    envelope_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objection: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnonymityDecision(StrEnum):
    PENDING = "pending"  # hits found, the panel has not decided
    CLEAN = "clean"  # no hit
    ACCEPTED = "accepted"  # hits judged harmless (e.g. a product name), reason recorded
    REJECTED = "rejected"  # the bid breaks the dark-bid rule: non-compliant


class EvaluatedBid(db.Model):
    """An opened bid under its random technical code (drawn when the bid is opened: its
    order says nothing about submission order; pages for experts only ever query by code).
    The opening job keeps its parts here (the stripped technical part, the qualification
    parts, the anonymity scan); the evaluation records its decisions on it (checks,
    overrule, price justification, lot draw)."""

    __tablename__ = "evaluated_bid"
    __table_args__ = (UniqueConstraint("tender_id", "code"), UniqueConstraint("bid_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    bid_id: Mapped[int] = mapped_column(ForeignKey("bid.id"))
    code: Mapped[str] = mapped_column(String(16))  # e.g. "T-7QK", random
    # The technical part with its PDF metadata stripped, in the blob store (NULL: none).
    technical_sha256: Mapped[str | None] = mapped_column(String(64))
    technical_size: Mapped[int | None] = mapped_column(BigInteger)
    technical_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    # [{"name": "qualification-1", "sha256", "size", "content_type"}]
    qualification: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Anonymity scan: [{"kind": "name"|"credit_code"|"alias", "term", "excerpt"}]
    anonymity_hits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    anonymity_decision: Mapped[str] = mapped_column(String(16), default=AnonymityDecision.CLEAN)
    anonymity_reason: Mapped[str] = mapped_column(Text, default="")
    # The panel's overrule of the automatic compliance verdict (NULL: none).
    override_compliant: Mapped[bool | None] = mapped_column(Boolean)
    override_reason: Mapped[str] = mapped_column(Text, default="")
    # The chair's record of the template's required checks other than the automatic ones:
    # {check: {"passed": bool, "reason": str, "by": user id, "at": ISO 8601}}.
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Abnormally low price: request, the bidder's justification, the panel's decision
    # (status: an `app.evaluations.models.LowPriceStatus`, "none" until flagged).
    low_price_status: Mapped[str] = mapped_column(String(16), default="none")
    low_price_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    low_price_justification: Mapped[str] = mapped_column(Text, default="")
    # [{"filename", "sha256", "size", "content_type"}]
    low_price_attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    low_price_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    low_price_reason: Mapped[str] = mapped_column(Text, default="")  # the panel's decision
    # Position drawn by lot for a tie the tie-breaks could not separate (lower wins).
    lot_draw: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TechnicalSource(db.Model):
    """What the opening read of a technical part before stripping it, for the supervisors'
    same-source signals only (never shown to panels, bidders or the public): the hash of the
    part as submitted, the PDF's /Author, /Creator and /Producer, and a MinHash sketch of its
    text (`evaluation.sources.text_sketch`; the text itself is not kept)."""

    __tablename__ = "technical_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    bid_id: Mapped[int] = mapped_column(ForeignKey("bid.id"), unique=True)
    original_sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(300), default="")
    creator: Mapped[str] = mapped_column(String(300), default="")
    producer: Mapped[str] = mapped_column(String(300), default="")
    # Up to 128 unsigned 64-bit hashes, as decimal strings (JSON numbers lose precision).
    text_sketch: Mapped[list[Any]] = mapped_column(JSON, default=list)
