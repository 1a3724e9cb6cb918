"""`make_*` factory fixtures: objects created through the models, committed in the test's
rolled-back transaction."""

from __future__ import annotations

import itertools

import pyotp
import pytest
from stdnum.cn import uscc

from app.accounts import security
from app.accounts.models import Role, User
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def valid_uscc(n: int) -> str:
    body = f"91330100MA{n:07d}"[:17]
    return body + uscc.calc_check_digit(body)


@pytest.fixture
def make_centre(app):
    from app.extensions import db

    def make(code: str | None = None, level: str = "city", parent=None, name=None):
        n = next(_counter)
        centre = TradingCentre(
            code=code or f"C{n}",
            name=name or f"Centre {n}",
            level=level,
            parent_id=parent.id if parent else None,
        )
        db.session.add(centre)
        db.session.commit()
        return centre

    return make


@pytest.fixture
def make_company(app, make_centre):
    from app.extensions import db

    def make(centre=None, status: str = CompanyStatus.APPROVED, name=None):
        n = next(_counter)
        company = Company(
            name=name or f"Company {n} Ltd.",
            registration_number=valid_uscc(n),
            legal_representative="Rep",
            contact_name="Contact",
            contact_phone="+86 571 1234 5678",
            home_centre_id=(centre or make_centre()).id,
            status=status,
        )
        db.session.add(company)
        db.session.commit()
        return company

    return make


@pytest.fixture
def make_user(app, make_centre, make_company):
    from app.extensions import db

    def make(role: str = Role.BIDDER, centre=None, company=None, totp: bool = True, **fields):
        n = next(_counter)
        needs_totp = role != Role.BIDDER
        user = User(
            email=fields.pop("email", f"user{n}@example.com"),
            full_name=fields.pop("full_name", f"User {n}"),
            role=role,
            password_hash=security.hash_password(fields.pop("password", PASSWORD)),
            email_confirmed_at=utcnow(),
            **fields,
        )
        if role in (Role.STAFF, Role.CUSTODIAN):
            user.centre_id = (centre or make_centre()).id
        if role == Role.BIDDER:
            user.company_id = (company or make_company()).id
        if needs_totp and totp:
            user.totp_secret = pyotp.random_base32()
            user.totp_enabled_at = utcnow()
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def make_tender(app, make_centre, make_user):
    """A tender row as it stands after publication (documents not rendered)."""
    from datetime import timedelta
    from decimal import Decimal

    from app.extensions import db
    from app.tenders.models import Lot, TemplateVersion, Tender, TenderCustodian, TenderTemplate

    def make(
        centre=None,
        status="published",
        reference=None,
        title=None,
        category="goods",
        days=20,
        **fields,
    ):
        n = next(_counter)
        centre = centre or make_centre()
        template = TenderTemplate(centre_id=centre.id, key=f"t{n}", name="T", category=category)
        db.session.add(template)
        db.session.flush()
        version = TemplateVersion(
            template_id=template.id, number=1, yaml_text="key: t", sha256="0" * 64
        )
        db.session.add(version)
        db.session.flush()
        creator = make_user(Role.STAFF, centre=centre)
        now = utcnow()
        tender = Tender(
            centre_id=centre.id,
            template_version_id=version.id,
            reference=reference or f"REF-{n}",
            title=title or f"Tender {n}",
            category=category,
            direction="lowest_wins",
            status=status,
            budget=Decimal("1000000.00"),
            bid_bond_amount=Decimal("10000.00"),
            publication_at=now,
            enquiry_deadline=now + timedelta(days=days - 5),
            submission_deadline=now + timedelta(days=days),
            opening_at=now + timedelta(days=days, hours=1),
            created_by_id=creator.id,
            published_at=now if status != "draft" else None,
            **fields,
        )
        db.session.add(tender)
        db.session.flush()
        db.session.add(
            Lot(tender_id=tender.id, number=1, title="Lot 1", ceiling_price=Decimal("990000.00"))
        )
        for _ in range(2):
            custodian = make_user(Role.CUSTODIAN, centre=centre)
            db.session.add(TenderCustodian(tender_id=tender.id, user_id=custodian.id))
        db.session.commit()
        return tender

    return make
