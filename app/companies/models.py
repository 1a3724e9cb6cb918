from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
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
    certificates: Mapped[list[CompanyCertificate]] = relationship(
        order_by="CompanyCertificate.expires_on"
    )
    aliases: Mapped[list[CompanyAlias]] = relationship(order_by="CompanyAlias.alias")

    def __repr__(self) -> str:
        return f"<Company {self.registration_number}>"

    @property
    def is_approved(self) -> bool:
        return self.status == CompanyStatus.APPROVED


class CompanyCertificate(db.Model):
    """A qualification certificate on the company's profile; expired ones are flagged."""

    __tablename__ = "company_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(100))
    issued_by: Mapped[str] = mapped_column(String(200), default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def expired(self, today: date) -> bool:
        return self.expires_on is not None and self.expires_on < today


class CompanyAlias(db.Model):
    """Other names the company is known by (for the anonymity scan of technical bids)."""

    __tablename__ = "company_alias"
    __table_args__ = (UniqueConstraint("company_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    alias: Mapped[str] = mapped_column(String(200))
