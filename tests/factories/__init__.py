"""Test factories, a pytest plugin (tests/conftest.py loads it): `make_*` fixtures create
objects through the models, committed in the test's rolled-back transaction.

The modules beside this one hold the builders several test files share, one per lifecycle
area (accounts, tenders, bids, opening, evaluations, scoring, records, results, ocds); a
test module imports them from here, never from another test module. Builders used by one
test file only stay in that file."""

from __future__ import annotations

import itertools
import json

import pyotp
import pytest
from stdnum.cn import uscc

from app.accounts import security
from app.accounts.models import Role, User
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow

PASSWORD = "correct horse battery"
# Every key made by `make_user(..., with_key=True)` is locked under this passphrase.
CUSTODIAN_PASSPHRASE = "custodian passphrase 42"
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

    def make(
        role: str = Role.BIDDER,
        centre=None,
        company=None,
        totp: bool = True,
        with_key: bool | None = None,
        **fields,
    ):
        """`with_key`: the user's custodian key pair, locked under CUSTODIAN_PASSPHRASE
        (default: custodians have one, nobody else)."""
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
        if with_key or (with_key is None and role == Role.CUSTODIAN):
            from app.custody.operations import create_custodian_key

            create_custodian_key(user, CUSTODIAN_PASSPHRASE)
            db.session.commit()
        return user

    return make


@pytest.fixture
def make_tender(app, make_centre, make_user):
    """A tender row as it stands after publication (documents not rendered): its two
    custodians have keys, and unless `keyed=False` the key ceremony has run (TenderKey and
    shares; `rebuild_tender_key` gives its private key back)."""
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
        keyed: bool = True,
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
        if keyed and status != "draft":
            from app.custody.operations import run_key_ceremony

            run_key_ceremony(tender, creator)
            db.session.commit()
        return tender

    return make


def rebuild_tender_key(tender, passphrase: str = CUSTODIAN_PASSPHRASE):
    """The tender's private key, rebuilt from its first k custodians' shares (each unlocked
    with `passphrase`) and checked against its public key: what the opening ceremony does."""
    from app.custody.models import CustodianKey, TenderKey
    from app.extensions import db
    from bidding import keys

    tender_key = db.session.get(TenderKey, tender.id)
    mnemonics = []
    for share in tender_key.shares[: tender_key.threshold]:
        locked = db.session.get(CustodianKey, share.custodian_key_id).locked_private_key
        private_key = keys.unlock_custodian_key(locked.encode(), passphrase)
        mnemonics.append(keys.decrypt_share(json.loads(share.encrypted_share), private_key))
    return keys.rebuild_private_key(mnemonics, bytes.fromhex(tender_key.public_key))


def unreachable_redis():
    """A Redis client pointed at a port where no Redis listens (an outage), with no retries
    and short timeouts so that a test of degraded mode stays fast."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1",
        port=1,
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )
