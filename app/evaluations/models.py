"""Evaluation rows. One `Evaluation` per tender; one `EvaluatedBid` per opened bid, carrying
the random technical code experts see instead of a name; one `ScoreSheet` per panel member
with a `TechnicalScore` per (bid, criterion).

The blind rule lives in the data too: `EvaluatedBid.code` is drawn at random when the bid is
opened (its order says nothing about submission order), and pages for experts only ever
query by code."""

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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class EvaluationStage(StrEnum):
    REVIEW = "review"  # automatic compliance and commercial scores shown; panel confirms
    SCORING = "scoring"  # technical score sheets open
    UNBLINDED = "unblinded"  # every sheet locked, identities revealed, ranking proposed
    FINALISED = "finalised"  # the panel finalised: the record is (being) made


class AnonymityDecision(StrEnum):
    PENDING = "pending"  # hits found, the panel has not decided
    CLEAN = "clean"  # no hit
    ACCEPTED = "accepted"  # hits judged harmless (e.g. a product name), reason recorded
    REJECTED = "rejected"  # the bid breaks the dark-bid rule: non-compliant


class LowPriceStatus(StrEnum):
    NONE = "none"
    REQUESTED = "requested"  # the bidder was asked to justify its price
    SUBMITTED = "submitted"  # the bidder answered
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # non-compliant: abnormally low without a convincing reason


class Evaluation(db.Model):
    __tablename__ = "evaluation"

    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), default=EvaluationStage.REVIEW)
    # The evaluation round: 1, then +1 for each re-evaluation after an upheld objection.
    round: Mapped[int] = mapped_column(Integer, default=1)
    chair_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    review_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    unblinded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finalised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last complete scoring file (canonical JSON, input and result) and its input hash.
    scoring_json: Mapped[str | None] = mapped_column(Text)
    scoring_sha256: Mapped[str | None] = mapped_column(String(64))


class EvaluatedBid(db.Model):
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
    # Abnormally low price: request, the bidder's justification, the panel's decision.
    low_price_status: Mapped[str] = mapped_column(String(16), default=LowPriceStatus.NONE)
    low_price_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    low_price_justification: Mapped[str] = mapped_column(Text, default="")
    # [{"filename", "sha256", "size", "content_type"}]
    low_price_attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    low_price_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    low_price_reason: Mapped[str] = mapped_column(Text, default="")  # the panel's decision
    # Position drawn by lot for a tie the tie-breaks could not separate (lower wins).
    lot_draw: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreSheet(db.Model):
    __tablename__ = "score_sheet"
    __table_args__ = (UniqueConstraint("tender_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    scores: Mapped[list[TechnicalScore]] = relationship(
        back_populates="sheet", cascade="all, delete-orphan", order_by="TechnicalScore.id"
    )


class TechnicalScore(db.Model):
    __tablename__ = "technical_score"
    __table_args__ = (UniqueConstraint("sheet_id", "evaluated_bid_id", "criterion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(ForeignKey("score_sheet.id"), index=True)
    evaluated_bid_id: Mapped[int] = mapped_column(ForeignKey("evaluated_bid.id"), index=True)
    criterion: Mapped[str] = mapped_column(String(64))
    score: Mapped[str] = mapped_column(String(32))  # decimal string, a multiple of the step
    reason: Mapped[str] = mapped_column(Text, default="")  # required at 0 and at max
    outlier: Mapped[bool] = mapped_column(Boolean, default=False)
    outlier_reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    sheet: Mapped[ScoreSheet] = relationship(back_populates="scores")
