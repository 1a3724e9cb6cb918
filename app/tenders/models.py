"""Tender templates (versioned), tenders with lots, documents, enquiries, addenda, and
bidders' registrations for a tender."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.centres.models import TradingCentre
from app.companies.models import Company
from app.core.types import UTCDateTime, utcnow
from app.extensions import db

Money = Numeric(18, 2, asdecimal=True)


class TenderStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CLOSED = "closed"
    OPENED = "opened"
    EVALUATING = "evaluating"
    CANDIDATES = "candidates"
    AWARDED = "awarded"
    FAILED = "failed"
    CANCELLED = "cancelled"


PUBLIC_STATUSES = frozenset(TenderStatus) - {TenderStatus.DRAFT}


class TenderTemplate(db.Model):
    """A template family: built-in (no centre) or a centre's own copy."""

    __tablename__ = "tender_template"
    __table_args__ = (UniqueConstraint("centre_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    # Provenance of a copy, e.g. "builtin goods v1 <sha256>".
    based_on: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    centre: Mapped[TradingCentre | None] = relationship()
    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template",
        order_by="TemplateVersion.number",
        foreign_keys="TemplateVersion.template_id",
    )

    @property
    def latest(self) -> TemplateVersion | None:
        return self.versions[-1] if self.versions else None


class TemplateVersion(db.Model):
    """One immutable text of a template; a tender records the exact version it used."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("template_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("tender_template.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    template: Mapped[TenderTemplate] = relationship(
        back_populates="versions", foreign_keys=[template_id]
    )


class Tender(db.Model):
    __tablename__ = "tender"
    __table_args__ = (UniqueConstraint("centre_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    template_version_id: Mapped[int] = mapped_column(ForeignKey("template_version.id"))
    reference: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(16), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=TenderStatus.DRAFT, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    budget: Mapped[Decimal | None] = mapped_column(Money)
    bid_bond_amount: Mapped[Decimal | None] = mapped_column(Money)
    publication_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enquiry_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    submission_deadline: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    opening_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evaluation_days: Mapped[int] = mapped_column(Integer, default=10)
    custodian_threshold: Mapped[int] = mapped_column(Integer, default=2)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    # The body the tender is run for (招标人); panels exclude experts who served it lately.
    procuring_entity: Mapped[str] = mapped_column(
        String(300), default="", server_default=text("''")
    )
    # Lots (标段 / 包): whether a company may bid for several lots, the most lots one company
    # may win (兼投不兼中; None: no limit) and how lots are awarded when that limit binds
    # (evaluation.lots.AwardRule: lot_order, max_total_score, min_total_price).
    multi_lot_bidding: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )
    max_lots_won: Mapped[int | None] = mapped_column(Integer)
    lot_award_rule: Mapped[str] = mapped_column(
        String(24), default="lot_order", server_default=text("'lot_order'")
    )

    centre: Mapped[TradingCentre] = relationship()
    template_version: Mapped[TemplateVersion] = relationship()
    lots: Mapped[list[Lot]] = relationship(
        back_populates="tender", order_by="Lot.number", cascade="all, delete-orphan"
    )
    custodians: Mapped[list[TenderCustodian]] = relationship(cascade="all, delete-orphan")
    documents: Mapped[list[TenderDocument]] = relationship(
        back_populates="tender", order_by="TenderDocument.id"
    )
    enquiries: Mapped[list[Enquiry]] = relationship(order_by="Enquiry.asked_at")
    addenda: Mapped[list[Addendum]] = relationship(order_by="Addendum.number")

    @property
    def is_public(self) -> bool:
        return self.status in PUBLIC_STATUSES

    @property
    def has_lots(self) -> bool:
        """Divided into several lots: bids, envelopes and registrations name their lot."""
        return len(self.lots) > 1

    def lot_by_reference(self, reference: str | None) -> Lot | None:
        return next((lot for lot in self.lots if lot.reference == reference), None)

    @property
    def live_lots(self) -> list[Lot]:
        """The lots still competed for (not cancelled by an addendum), in order."""
        return [lot for lot in self.lots if not lot.is_cancelled]

    @property
    def ocid_suffix(self) -> str:
        return f"{self.centre.code}-{self.reference}"


def _number_as_reference(context) -> str:
    return str(context.get_current_parameters()["number"])


class Lot(db.Model):
    """标段: each lot is its own competition."""

    __tablename__ = "lot"
    __table_args__ = (
        UniqueConstraint("tender_id", "number"),
        UniqueConstraint("tender_id", "reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # What envelopes, receipts and records name the lot by (an identifier: 1-32 characters
    # of A-Z a-z 0-9 . _ : -); the lot's number unless staff chose another.
    reference: Mapped[str] = mapped_column(String(32), default=_number_as_reference)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    quantity: Mapped[str] = mapped_column(String(200), default="", server_default=text("''"))
    budget: Mapped[Decimal | None] = mapped_column(Money)
    ceiling_price: Mapped[Decimal | None] = mapped_column(Money)
    reserve_price: Mapped[Decimal | None] = mapped_column(Money)
    bid_bond_amount: Mapped[Decimal | None] = mapped_column(Money)
    # A lot cancelled by an addendum before the deadline: no new envelope for it; those
    # already received are kept unopened and reported at the opening.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_addendum_id: Mapped[int | None] = mapped_column(ForeignKey("addendum.id"))

    tender: Mapped[Tender] = relationship(back_populates="lots")

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


class TenderCustodian(db.Model):
    __tablename__ = "tender_custodian"

    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)


class DocumentKind(StrEnum):
    TENDER_HTML = "tender_html"
    TENDER_PDF = "tender_pdf"
    ATTACHMENT = "attachment"
    ADDENDUM_PDF = "addendum_pdf"


class TenderDocument(db.Model):
    """A downloadable file of a tender; content lives in the blob store by SHA-256."""

    __tablename__ = "tender_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    addendum_id: Mapped[int | None] = mapped_column(ForeignKey("addendum.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tender: Mapped[Tender] = relationship(back_populates="documents")


class Enquiry(db.Model):
    """A registered bidder's question; answered publicly without the asker's name."""

    __tablename__ = "enquiry"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"))
    question: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class Addendum(db.Model):
    __tablename__ = "addendum"
    __table_args__ = (UniqueConstraint("tender_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    deadline_before: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_after: Mapped[datetime] = mapped_column(UTCDateTime)
    # What the addendum changed in the lots (a published tender's lots change only here):
    # [{"action": "add" | "cancel" | "change", "lot": reference, ...}] (app.tenders.lot_changes).
    lot_changes: Mapped[list[Any]] = mapped_column(JSON, default=list)


class TenderRegistration(db.Model):
    """An approved company's registered interest in a published tender."""

    __tablename__ = "tender_registration"
    __table_args__ = (UniqueConstraint("tender_id", "company_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("company.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))

    tender: Mapped[Tender] = relationship()
    company: Mapped[Company] = relationship()
    bonds: Mapped[list[BondRecord]] = relationship(order_by="BondRecord.recorded_at")
    lots: Mapped[list[Lot]] = relationship(secondary="registration_lot", order_by="Lot.number")

    @property
    def bond_total(self) -> Decimal:
        return sum((b.amount for b in self.bonds), Decimal("0"))


class RegistrationLot(db.Model):
    """A lot a registered company chose to bid for (a tender divided into lots)."""

    __tablename__ = "registration_lot"

    registration_id: Mapped[int] = mapped_column(
        ForeignKey("tender_registration.id", ondelete="CASCADE"), primary_key=True
    )
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), primary_key=True, index=True)


class BondRecord(db.Model):
    """A bid-bond payment or guarantee recorded by staff for one registration."""

    __tablename__ = "bond_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("tender_registration.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # payment | guarantee
    amount: Mapped[Decimal] = mapped_column(Money)
    reference: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))


class DocumentDownload(db.Model):
    __tablename__ = "document_download"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("tender_document.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"), index=True)
    downloaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))


class Notification(db.Model):
    """An in-app message (e-mail goes out too)."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
