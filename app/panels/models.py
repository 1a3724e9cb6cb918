"""The expert pool and the panel of a tender.

An expert is a user with Role.EXPERT and a profile; a profile without a centre belongs to
the shared city pool, which every centre draws from. The draw row keeps everything a
replay needs (seed, its inputs, the eligible ids in order); members keep their seat
(`position`) across a redraw, which replaces the declined member's row by a new one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import User
from app.core.types import UTCDateTime, utcnow
from app.extensions import db

# The controlled vocabulary of specialties (keys; labels are translated in the views).
SPECIALTIES = (
    "civil",
    "structural",
    "electrical",
    "mechanical",
    "it",
    "medical",
    "environmental",
    "economic",
    "legal",
)


class MemberStatus(StrEnum):
    INVITED = "invited"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REMOVED = "removed"


class ExpertProfile(db.Model):
    __tablename__ = "expert_profile"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    # NULL: the shared city pool.
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    specialties: Mapped[str] = mapped_column(String(500), default="")  # comma list of keys
    employer: Mapped[str] = mapped_column(String(300), default="")
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()

    @property
    def specialty_set(self) -> frozenset[str]:
        return frozenset(s for s in self.specialties.split(",") if s)


class ExpertRelationship(db.Model):
    __tablename__ = "expert_relationship"
    __table_args__ = (UniqueConstraint("user_id", "company_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    # employee, director, shareholder, relative (of the legal representative),
    # economic_interest
    kind: Mapped[str] = mapped_column(String(32))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PanelDraw(db.Model):
    __tablename__ = "panel_draw"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    quotas: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[str] = mapped_column(String(64))  # hex
    # {"merkle_root": hex, "draw_time": ISO 8601}: seed = SHA-256(root ‖ time).
    seed_inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{"id", "specialties"}] sorted by id: what a replay draws from.
    eligible: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # [{"declined": user_id, "replacement": user_id, "counter": n}] in order.
    redraws: Mapped[list[Any]] = mapped_column(JSON, default=list)
    counter: Mapped[int] = mapped_column(Integer, default=0)  # next unused stream counter
    # [{"id": user_id, "reasons": [...]}] sorted by id: experts of the pool left out before
    # the draw and why (see operations.EXCLUSION_REASONS). NULL on rows from before it.
    excluded: Mapped[list[Any] | None] = mapped_column(JSON, default=list)
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    drawn_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))


class PanelMember(db.Model):
    __tablename__ = "panel_member"
    __table_args__ = (UniqueConstraint("tender_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.INVITED)
    position: Mapped[int] = mapped_column(Integer)  # seat number, 1-based
    drawn_for: Mapped[str | None] = mapped_column(String(32))  # the quota's specialty
    declined_reason: Mapped[str] = mapped_column(Text, default="")
    conflict_declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    conflict_statement: Mapped[str] = mapped_column(Text, default="")
    removed_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
