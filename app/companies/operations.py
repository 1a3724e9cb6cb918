"""Company registrations: staff of the company's home centre approve or reject them."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select

from app.accounts.models import Role, User
from app.audit import append_event
from app.companies.models import Company, CompanyStatus
from app.core.errors import Conflict, OperationError
from app.core.mail import send_after_commit
from app.core.types import utcnow
from app.extensions import db
from app.permissions import Permission, can, require


def companies_visible_to(user: User, status: str | None = None) -> Select:
    """Staff see their centre's companies; supervisors and admins see all."""
    require(user, Permission.VIEW_COMPANIES)
    query = select(Company).order_by(Company.created_at.desc())
    if not can(user, Permission.VIEW_ALL_CENTRES):
        query = query.where(Company.home_centre_id == user.centre_id)
    if status:
        query = query.where(Company.status == status)
    return query


def get_company_for(user: User, company_id: int) -> Company | None:
    company = db.session.get(Company, company_id)
    if company is None:
        return None
    require(user, Permission.VIEW_COMPANIES, centre_id=company.home_centre_id)
    return company


def _decide(actor: User, company: Company, status: CompanyStatus, reason: str) -> None:
    if company.status != CompanyStatus.PENDING:
        raise Conflict(_l("This registration has already been decided."), code="already_decided")
    company.status = status
    company.decided_by_id = actor.id
    company.decided_at = utcnow()
    company.decision_reason = reason
    append_event(
        f"company.{status.value}",
        actor=actor,
        object_type="company",
        object_id=company.id,
        centre_id=company.home_centre_id,
        data={"reason": reason},
    )
    contacts = db.session.scalars(
        select(User).where(User.company_id == company.id, User.role == Role.BIDDER)
    )
    for contact in contacts:
        send_after_commit(
            contact.email,
            _l("Your company registration on Fairbid"),
            "company_decision",
            locale=contact.locale,
            company=company,
            user=contact,
        )


def approve_company(actor: User, company: Company, reason: str = "") -> None:
    require(actor, Permission.DECIDE_COMPANY, centre_id=company.home_centre_id)
    _decide(actor, company, CompanyStatus.APPROVED, reason.strip())


def reject_company(actor: User, company: Company, reason: str) -> None:
    require(actor, Permission.DECIDE_COMPANY, centre_id=company.home_centre_id)
    if not (reason or "").strip():
        raise OperationError(_l("Give the company a reason for the rejection."), code="reason")
    _decide(actor, company, CompanyStatus.REJECTED, reason.strip())
