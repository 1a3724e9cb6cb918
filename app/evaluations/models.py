"""Evaluation rows. One `Evaluation` per tender (a tender of several lots keeps its
per-lot scoring files and the cross-lot award in `lots_json`); one `ScoreSheet` per panel
member with a `TechnicalScore` per (evaluated bid, criterion). The evaluated bids
themselves (one per opened bid, under the random technical code experts see instead of a
name) are made when the bids are opened: `app.opening.models.EvaluatedBid`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
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
    # A tender divided into lots (NULL otherwise): one scoring file per lot and the
    # cross-lot award (canonical JSON, `app.evaluations.scoring_file.LOTS_FORMAT`).
    lots_json: Mapped[str | None] = mapped_column(Text)


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
