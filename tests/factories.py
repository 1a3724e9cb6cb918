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
