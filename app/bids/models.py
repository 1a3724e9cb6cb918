"""Sealed bids. The server holds envelopes it cannot read; each accepted envelope gets a
signed receipt. Accepting a bid inserts rows of its own only: it never updates the tender
or any other shared row, so concurrent submissions never wait for each other."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class BidStatus(StrEnum):
    SUBMITTED = "submitted"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


class Bid(db.Model):
    """One accepted envelope. Its id is the receipt's sequence number (a database
    sequence: no counter row to lock)."""

    __tablename__ = "bid"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    # The lot the envelope is for (its header binds it); None in a tender of one lot.
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lot.id"), index=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(16), default=BidStatus.SUBMITTED, index=True)
    envelope_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    receipt: Mapped[str] = mapped_column(Text)  # signed receipt, canonical JSON
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("bid.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    # Keyed hashes (HMAC, app.core.keyed_hash) of the uploader's address and user agent: the
    # supervisors' same-source signals compare them across bidders after the opening; never
    # shown to panels.
    address_hmac: Mapped[str | None] = mapped_column(String(64))
    agent_hmac: Mapped[str | None] = mapped_column(String(64))


class UploadSession(db.Model):
    """A resumable envelope upload: bytes land in a temporary file in the blob store's
    directory until the last one arrives; then the envelope is checked and accepted."""

    __tablename__ = "upload_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # random UUID
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    declared_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_bid_id: Mapped[int | None] = mapped_column(ForeignKey("bid.id"))
    abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
