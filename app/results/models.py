"""Result notices, objections and result letters. A notice is never edited: a correction
is a new notice, the old one marked superseded."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class NoticeKind(StrEnum):
    CANDIDATES = "candidates"
    AWARD = "award"
    FAILED = "failed"


class ObjectionStatus(StrEnum):
    OPEN = "open"
    UPHELD = "upheld"
    DISMISSED = "dismissed"


class ResultNotice(db.Model):
    __tablename__ = "result_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    # The lot the notice is about in a tender of several lots; None: the whole tender (a
    # tender of one lot, or a failure of the whole tender).
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lot.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("evaluation_record.id"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    objection_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Candidates / award: [{"rank", "company_id", "company", "price", "total", ...}]
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")  # failed: the public reason
    document_id: Mapped[int | None] = mapped_column(ForeignKey("tender_document.id"))
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Objection(db.Model):
    __tablename__ = "objection"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("result_notice.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    filed_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    # [{"filename", "sha256", "size", "content_type"}] in the blob store
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=ObjectionStatus.OPEN)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str] = mapped_column(Text, default="")


class ResultLetter(db.Model):
    __tablename__ = "result_letter"
    __table_args__ = (UniqueConstraint("tender_id", "company_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    document_id: Mapped[int] = mapped_column(ForeignKey("tender_document.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
