"""Bidders take part in a published tender: registration, enquiries, document downloads;
staff answer enquiries and record bid bonds."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.accounts.models import User
from app.audit import append_event
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.extensions import db
from app.permissions import Permission, can, require
from app.tenders.models import (
    BondRecord,
    DocumentDownload,
    DocumentKind,
    Enquiry,
    Lot,
    Notification,
    Tender,
    TenderDocument,
    TenderRegistration,
    TenderStatus,
)
from app.tenders.notify import notify_registered

MAX_QUESTION = 4000


def _approved_company(user: User) -> Company:
    require(user, Permission.TAKE_PART)
    company = user.company
    if company is None or not company.is_approved:
        raise OperationError(
            _l("Your company's registration must be approved before it can take part."),
            code="company_not_approved",
            status=403,
        )
    return company


def registration_of(tender: Tender, company_id: int | None) -> TenderRegistration | None:
    if company_id is None:
        return None
    return db.session.scalar(
        select(TenderRegistration).where(
            TenderRegistration.tender_id == tender.id,
            TenderRegistration.company_id == company_id,
        )
    )


def chosen_lots(tender: Tender, references: Sequence[str] | None) -> list[Lot]:
    """The lots a company registers for, by reference: in a tender divided into lots, at
    least one (only one unless the tender allows bidding for several), each known; in a
    tender of one lot, none may be named."""
    references = list(dict.fromkeys(references or ()))
    if not tender.has_lots:
        if references:
            raise OperationError(
                _l("This tender is not divided into lots: name no lot."), code="no_lots"
            )
        return []
    if not references:
        raise OperationError(_l("Choose the lots your company will bid for."), code="lots_required")
    lots = []
    for reference in references:
        lot = tender.lot_by_reference(reference)
        if lot is None:
            raise OperationError(
                _l("This tender has no lot %(lot)s.", lot=reference[:40]), code="unknown_lot"
            )
        if lot.is_cancelled:
            raise OperationError(
                _l("Lot %(lot)s was cancelled by an addendum.", lot=lot.reference),
                code="lot_cancelled",
            )
        lots.append(lot)
    if len(lots) > 1 and not tender.multi_lot_bidding:
        raise OperationError(
            _l("In this tender a company may bid for one lot only."), code="one_lot_only"
        )
    return sorted(lots, key=lambda lot: lot.number)


def register_for_tender(
    user: User, tender: Tender, lots: Sequence[str] | None = None
) -> TenderRegistration:
    """Register the user's company; ``lots``: the references of the lots it will bid for
    (a tender divided into lots)."""
    company = _approved_company(user)
    if tender.status != TenderStatus.PUBLISHED:
        raise Conflict(_l("This tender is not open for registration."), code="status")
    if utcnow() >= tender.submission_deadline:
        raise Conflict(_l("The bid deadline has passed."), code="deadline_passed")
    if registration_of(tender, company.id) is not None:
        raise Conflict(_l("Your company is already registered for this tender."), "registered")
    chosen = chosen_lots(tender, lots)
    registration = TenderRegistration(
        tender_id=tender.id, company_id=company.id, registered_by_id=user.id
    )
    registration.lots = chosen
    db.session.add(registration)
    db.session.flush()
    data: dict = {"company_id": company.id}
    if chosen:
        data["lots"] = [lot.reference for lot in chosen]
    append_event(
        "tender.registered",
        actor=user,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data=data,
    )
    return registration


def can_download(user: User, tender: Tender) -> bool:
    """Registered companies, and staff / supervisors who oversee the tender."""
    if can(user, Permission.VIEW_TENDERS, centre_id=tender.centre_id):
        return True
    company_id = getattr(user, "company_id", None)
    return registration_of(tender, company_id) is not None


def record_download(user: User, document: TenderDocument) -> None:
    tender = document.tender
    if not getattr(user, "is_authenticated", False) or not can_download(user, tender):
        raise OperationError(
            _l("Register your company for this tender to download its documents."),
            code="not_registered",
            status=403,
        )
    if document.kind not in {kind.value for kind in DocumentKind}:
        # Records, notices and letters are served by their own pages, with their own rules.
        raise OperationError(_l("There is no such document."), code="not_found", status=404)
    if document.superseded_at is not None and document.kind != DocumentKind.ATTACHMENT:
        raise OperationError(_l("This document was replaced."), code="superseded", status=404)
    db.session.add(
        DocumentDownload(
            document_id=document.id,
            user_id=user.id,
            company_id=user.company_id,
            ip=request.remote_addr if has_request_context() else None,
        )
    )


def ask_enquiry(user: User, tender: Tender, question: str) -> Enquiry:
    company = _approved_company(user)
    if registration_of(tender, company.id) is None:
        raise OperationError(
            _l("Register your company for this tender to ask a question."), "not_registered", 403
        )
    if tender.status != TenderStatus.PUBLISHED or utcnow() > tender.enquiry_deadline:
        raise Conflict(_l("The enquiry period is over."), code="enquiry_closed")
    question = (question or "").strip()
    if not question or len(question) > MAX_QUESTION:
        raise OperationError(
            _l("Write a question of at most %(n)d characters.", n=MAX_QUESTION), "question"
        )
    enquiry = Enquiry(tender_id=tender.id, company_id=company.id, question=question)
    db.session.add(enquiry)
    db.session.flush()
    append_event(
        "tender.enquiry_asked",
        actor=user,
        object_type="enquiry",
        object_id=enquiry.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={"tender_id": tender.id},
    )
    return enquiry


def answer_enquiry(actor: User, enquiry: Enquiry, answer: str) -> None:
    tender = db.session.get(Tender, enquiry.tender_id)
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    answer = (answer or "").strip()
    if not answer:
        raise OperationError(_l("Write the answer."), code="answer")
    if enquiry.answered_at is not None:
        raise Conflict(_l("This question is already answered."), code="answered")
    enquiry.answer = answer
    enquiry.answered_at = utcnow()
    enquiry.answered_by_id = actor.id
    append_event(
        "tender.enquiry_answered",
        actor=actor,
        object_type="enquiry",
        object_id=enquiry.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
    )
    notify_registered(
        tender, _l("A question on tender %(ref)s is answered", ref=tender.reference), "answer"
    )


def record_bond(
    actor: User, registration: TenderRegistration, kind: str, amount: Decimal, reference: str
) -> BondRecord:
    tender = registration.tender
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if kind not in ("payment", "guarantee"):
        raise OperationError(_l("A bond is a payment or a guarantee."), code="kind")
    if amount is None or amount <= 0:
        raise OperationError(_l("Give the bond amount."), code="amount")
    if not (reference or "").strip():
        raise OperationError(_l("Give the payment or guarantee reference."), code="reference")
    bond = BondRecord(
        registration_id=registration.id,
        kind=kind,
        amount=amount,
        reference=reference.strip()[:100],
        recorded_by_id=actor.id,
    )
    db.session.add(bond)
    db.session.flush()
    append_event(
        "tender.bond_recorded",
        actor=actor,
        object_type="registration",
        object_id=registration.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={"kind": kind, "amount": str(amount), "reference": bond.reference},
    )
    return bond


def bond_required(tender: Tender, registration: TenderRegistration | None) -> Decimal | None:
    """The bid bond a registration owes: per lot in a tender divided into lots (each chosen
    lot's bond, the tender's where a lot names none; none for a lot cancelled by an
    addendum), else the tender's."""
    if registration is None or not tender.has_lots or not registration.lots:
        return tender.bid_bond_amount
    amounts = [
        lot.bid_bond_amount or tender.bid_bond_amount
        for lot in registration.lots
        if not lot.is_cancelled
    ]
    if all(amount is None for amount in amounts):
        return None
    return sum((amount or Decimal("0") for amount in amounts), Decimal("0"))


def bond_status(tender: Tender, registration: TenderRegistration | None) -> str:
    """not_required | missing | partial | paid."""
    required = bond_required(tender, registration)
    if not required:
        return "not_required"
    if registration is None:
        return "missing"
    paid = registration.bond_total
    if paid >= required:
        return "paid"
    return "partial" if paid > 0 else "missing"


def can_see_tender(user: User | None, tender: Tender) -> bool:
    """Published (and later) tenders are public; a draft only for those overseeing it."""
    return tender.is_public or can(user, Permission.VIEW_TENDERS, centre_id=tender.centre_id)


def company_registrations(user: User) -> list[TenderRegistration]:
    """The registrations of the user's own company, latest bid deadline first."""
    require(user, Permission.TAKE_PART)
    if user.company_id is None:
        return []
    return list(
        db.session.scalars(
            select(TenderRegistration)
            .join(Tender, Tender.id == TenderRegistration.tender_id)
            .where(TenderRegistration.company_id == user.company_id)
            .order_by(Tender.submission_deadline.desc(), TenderRegistration.id)
        )
    )


def registrations_visible_to(user: User, tender: Tender) -> list[TenderRegistration]:
    """Staff of the tender's centre (and supervisors, administrators) see every
    registration; a bidder sees only its own company's."""
    if can(user, Permission.VIEW_TENDERS, centre_id=tender.centre_id):
        return list(
            db.session.scalars(
                select(TenderRegistration)
                .where(TenderRegistration.tender_id == tender.id)
                .order_by(TenderRegistration.registered_at, TenderRegistration.id)
            )
        )
    require(user, Permission.TAKE_PART)
    registration = registration_of(tender, user.company_id)
    return [registration] if registration is not None else []


def enquiries_visible_to(user: User | None, tender: Tender) -> list[Enquiry]:
    """Everyone sees the answered questions; a bidder also its own company's unanswered
    ones; staff overseeing the tender see all. Never who asked."""
    query = select(Enquiry).where(Enquiry.tender_id == tender.id)
    if not can(user, Permission.VIEW_TENDERS, centre_id=tender.centre_id):
        visible = Enquiry.answered_at.is_not(None)
        if can(user, Permission.TAKE_PART) and user.company_id is not None:
            visible = visible | (Enquiry.company_id == user.company_id)
        query = query.where(visible)
    return list(db.session.scalars(query.order_by(Enquiry.asked_at, Enquiry.id)))


def notifications_query(user: User, unread_only: bool = False):
    """The user's in-app notifications, newest first (a select for pagination)."""
    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query.order_by(Notification.created_at.desc(), Notification.id.desc())


def unread_count(user: User) -> int:
    return db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.user_id == user.id, Notification.read_at.is_(None)
        )
    )


def mark_notification_read(user: User, notification: Notification) -> None:
    """Only the addressee marks a notification read; reading twice changes nothing."""
    if notification.user_id != getattr(user, "id", None):
        raise OperationError(_l("Unknown notification."), code="not_found", status=404)
    if notification.read_at is None:
        notification.read_at = utcnow()
