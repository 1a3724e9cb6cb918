from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.centres.models import TradingCentre
from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class CompanyStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Company(db.Model):
    """A bidder company, registered online and approved by staff of its home centre."""

    __tablename__ = "company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # China's 18-character unified social credit code (统一社会信用代码).
    registration_number: Mapped[str] = mapped_column(String(18), unique=True)
    legal_representative: Mapped[str] = mapped_column(String(100), default="")
    contact_name: Mapped[str] = mapped_column(String(100))
    contact_phone: Mapped[str] = mapped_column(String(40))
    home_centre_id: Mapped[int] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CompanyStatus.PENDING, index=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", use_alter=True))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    home_centre: Mapped[TradingCentre] = relationship()

    def __repr__(self) -> str:
        return f"<Company {self.registration_number}>"

    @property
    def is_approved(self) -> bool:
        return self.status == CompanyStatus.APPROVED
