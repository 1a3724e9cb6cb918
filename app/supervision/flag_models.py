"""Red flags for supervisors: computed by jobs (after each opening, nightly over history),
reviewed by supervisors. A flag never changes a tender; only its review status changes."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class FlagStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"


class FlagKind(StrEnum):
    PRICE = "price"  # evaluation.screens, one competition
    SOURCE = "source"  # evaluation.sources, one competition, after its opening
    MARKET = "market"  # evaluation.market, across competitions


class RedFlag(db.Model):
    """One raised flag. `subject` identifies what it is about (e.g. "tender:12",
    "tender:12:bids:3,5", "company:4:winner:9", "centre:2") so that a rerun updates the same
    row (score, evidence) and keeps its review."""

    __tablename__ = "red_flag"
    __table_args__ = (UniqueConstraint("rule", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    tender_id: Mapped[int | None] = mapped_column(ForeignKey("tender.id"), index=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    competition: Mapped[str] = mapped_column(String(32), default="")  # a lot, once lots exist
    score: Mapped[str] = mapped_column(String(16))  # decimal string in [0, 1]
    threshold: Mapped[str] = mapped_column(String(64), default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=FlagStatus.OPEN, index=True)
    review_reason: Mapped[str] = mapped_column(Text, default="")
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlagRun(db.Model):
    """One nightly run over history per day (the clock enqueues it once)."""

    __tablename__ = "flag_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raised: Mapped[int] = mapped_column(default=0)
