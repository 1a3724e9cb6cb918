"""What the clock did and what it found late.

`ClockStep`: a step that changes no other row (a notification) is guarded by its own row,
unique per (step, tender): the insert that wins performs it, a second tick's insert fails.
`ClockAlert`: an overdue step or a failing step, raised once per (kind, tender), resolved by
the tick that finds the step done."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class ClockStep(db.Model):
    __tablename__ = "clock_step"
    __table_args__ = (UniqueConstraint("step", "tender_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step: Mapped[str] = mapped_column(String(32))
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClockAlert(db.Model):
    __tablename__ = "clock_alert"
    __table_args__ = (UniqueConstraint("kind", "tender_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")


class ClockReminder(db.Model):
    """A reminder that belongs to no tender (a company's certificate expiring), sent once:
    its `key` (what, which object, which threshold) is unique, like `ClockStep`."""

    __tablename__ = "clock_reminder"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
