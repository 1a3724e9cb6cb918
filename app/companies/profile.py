"""A bidder company's profile: qualification certificates (expiry flagged) and aliases."""

from __future__ import annotations

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l

from app.accounts.models import User
from app.audit import append_event
from app.companies.models import Company, CompanyAlias, CompanyCertificate
from app.core.errors import Conflict, OperationError
from app.core.text import clean_name
from app.extensions import db
from app.permissions import Permission, require

# Certificates expiring this soon are shown with a warning.
EXPIRY_WARNING_DAYS = 30


def certificate_state(certificate: CompanyCertificate, today: date) -> str:
    """expired | expiring (within EXPIRY_WARNING_DAYS) | valid | no_expiry."""
    if certificate.expires_on is None:
        return "no_expiry"
    if certificate.expired(today):
        return "expired"
    if certificate.expires_on <= today + timedelta(days=EXPIRY_WARNING_DAYS):
        return "expiring"
    return "valid"


def _own_company(user: User) -> Company:
    require(user, Permission.TAKE_PART)
    if user.company is None:
        raise OperationError(_l("Your account has no company."), status=403)
    return user.company


def add_certificate(
    user: User, *, name: str, number: str, issued_by: str, expires_on: date | None
) -> CompanyCertificate:
    company = _own_company(user)
    if not name.strip() or not number.strip():
        raise OperationError(_l("Give the certificate's name and number."), code="certificate")
    certificate = CompanyCertificate(
        company_id=company.id,
        name=name.strip()[:200],
        number=number.strip()[:100],
        issued_by=issued_by.strip()[:200],
        expires_on=expires_on,
    )
    db.session.add(certificate)
    db.session.flush()
    append_event(
        "company.certificate_added",
        actor=user,
        object_type="company",
        object_id=company.id,
        data={"certificate_id": certificate.id, "name": certificate.name},
    )
    return certificate


def remove_certificate(user: User, certificate: CompanyCertificate) -> None:
    company = _own_company(user)
    if certificate.company_id != company.id:
        raise OperationError(_l("Unknown certificate."), status=404)
    db.session.delete(certificate)
    append_event(
        "company.certificate_removed",
        actor=user,
        object_type="company",
        object_id=company.id,
        data={"certificate_id": certificate.id},
    )


def add_alias(user: User, alias: str) -> CompanyAlias:
    company = _own_company(user)
    alias = clean_name(alias, _l("Other name"))
    if not alias or len(alias) > 200:
        raise OperationError(_l("Give a name of at most 200 characters."), code="alias")
    if any(a.alias == alias for a in company.aliases):
        raise Conflict(_l("This name is already listed."), code="alias_exists")
    record = CompanyAlias(company_id=company.id, alias=alias)
    db.session.add(record)
    db.session.flush()
    append_event(
        "company.alias_added",
        actor=user,
        object_type="company",
        object_id=company.id,
        data={"alias": alias},
    )
    return record


def remove_alias(user: User, alias: CompanyAlias) -> None:
    company = _own_company(user)
    if alias.company_id != company.id:
        raise OperationError(_l("Unknown name."), status=404)
    db.session.delete(alias)
    append_event(
        "company.alias_removed",
        actor=user,
        object_type="company",
        object_id=company.id,
        data={"alias": alias.alias},
    )
