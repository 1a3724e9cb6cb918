"""The drill's people: a centre, an administrator, staff, key custodians, experts and bidder
companies, created through the same operations as real ones (the `flask centres create` and
`flask users create` paths on an empty database, then the admin's `create_user`, TOTP
enrolment, custodian keys, the expert pool, company sign-up, e-mail confirmation and staff
approval). Each run gets its own people (e-mail addresses tagged with the run id); passwords
are random and never shown: the drill acts through the operations, not through sign-in."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pyotp
from sqlalchemy import select
from stdnum.cn import uscc

from app.accounts import operations as accounts
from app.accounts import security
from app.accounts.models import Role, User
from app.accounts.operations import CONFIRM_SALT, confirm_email, register_company
from app.audit import append_event
from app.centres.models import TradingCentre
from app.centres.operations import create_centre
from app.companies.operations import approve_company
from app.core.types import utcnow
from app.custody.operations import active_key_of, create_custodian_key
from app.extensions import db
from app.panels.operations import save_expert_profile

DOMAIN = "drill.fairbid.example"
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
EXPERT_SPECIALTIES = (
    ["economic"],
    ["it", "electrical"],
    ["civil"],
    ["mechanical"],
    ["environmental"],
)


@dataclass
class Custodian:
    user: User
    passphrase: str


@dataclass
class Cast:
    run_id: str
    centre: TradingCentre
    admin: User
    staff: User
    custodians: list[Custodian]
    experts: list[User]
    bidders: list[User] = field(default_factory=list)


def new_run_id() -> str:
    return secrets.token_hex(3)


def random_uscc(rng: secrets.SystemRandom | None = None) -> str:
    rng = rng or secrets.SystemRandom()
    body = "91330100" + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def totp_code(user: User) -> str:
    """The code the user's authenticator shows, as the tests make it; when this person's
    current code was just used, the next step's (the platform accepts one step of drift);
    when that was used too, the drill waits for the next step."""
    import time

    totp = pyotp.TOTP(user.totp_secret)
    while True:
        now = utcnow_real()
        current = int(now // security.TOTP_INTERVAL)
        step = max(current - 1, (user.totp_last_step or 0) + 1)
        if step <= current + 1:
            return totp.generate_otp(step)
        # Every code the platform would accept now was used: wait for the authenticator's
        # next one, as a person would.
        time.sleep((current + 1) * security.TOTP_INTERVAL - now + 0.05)


def utcnow_real() -> float:
    """TOTP runs on the real clock (the authenticator's), never the drill's."""
    import time

    return time.time()


def _email(run_id: str, who: str) -> str:
    return f"drill-{run_id}-{who}@{DOMAIN}"


def _password() -> str:
    return secrets.token_urlsafe(12)


def _enrol_totp(user: User) -> None:
    secret = accounts.start_totp_enrolment(user)
    current = int(utcnow_real() // security.TOTP_INTERVAL)
    accounts.enrol_second_factor(user, pyotp.TOTP(secret).generate_otp(current))


def centre_for(run_id: str, code: str | None) -> TradingCentre:
    """An existing centre by code, or a fresh one for this run (as `flask centres create`)."""
    if code:
        centre = db.session.scalar(select(TradingCentre).where(TradingCentre.code == code.upper()))
        if centre is None:
            raise LookupError(f"no centre with code {code}")
        return centre
    return create_centre(
        None,
        code=f"DRILL-{run_id.upper()}",
        name=f"Drill centre {run_id}",
        level="city",
        parent_id=None,
    )


def bootstrap_admin(run_id: str) -> User:
    """The first administrator, exactly as `flask users create --role admin` makes it."""
    user = User(
        email=_email(run_id, "admin"),
        full_name="Drill Administrator",
        role=Role.ADMIN,
        password_hash=security.hash_password(_password()),
        email_confirmed_at=utcnow(),
    )
    db.session.add(user)
    db.session.flush()
    append_event(
        "user.created",
        object_type="user",
        object_id=user.id,
        data={"email": user.email, "role": Role.ADMIN, "via": "scenario"},
    )
    _enrol_totp(user)
    return user


def _person(admin: User, run_id: str, who: str, name: str, role: str, centre_id: int | None):
    user = accounts.create_user(
        admin,
        email=_email(run_id, who),
        full_name=name,
        role=role,
        centre_id=centre_id,
        password=_password(),
    )
    _enrol_totp(user)
    return user


def make_cast(
    run_id: str,
    *,
    centre_code: str | None,
    experts: int,
    custodians: list[Custodian] | None = None,
    admin: User | None = None,
) -> Cast:
    centre = centre_for(run_id, centre_code)
    admin = admin or bootstrap_admin(run_id)
    staff = _person(admin, run_id, "staff", f"Drill Staff {run_id}", Role.STAFF, centre.id)
    if custodians is None:
        custodians = []
        for n in (1, 2, 3):
            user = _person(
                admin, run_id, f"custodian{n}", f"Drill Custodian {n}", Role.CUSTODIAN, centre.id
            )
            passphrase = secrets.token_urlsafe(16)
            create_custodian_key(user, passphrase)
            custodians.append(Custodian(user, passphrase))
    for custodian in custodians:
        if active_key_of(custodian.user) is None:
            create_custodian_key(custodian.user, custodian.passphrase)
    pool = []
    for n in range(1, experts + 1):
        user = _person(admin, run_id, f"expert{n}", f"Drill Expert {n}", Role.EXPERT, None)
        save_expert_profile(
            staff,
            user,
            centre_id=centre.id,
            specialties=EXPERT_SPECIALTIES[(n - 1) % len(EXPERT_SPECIALTIES)],
            employer=f"Drill Institute {n}",
            available=True,
        )
        pool.append(user)
    return Cast(run_id, centre, admin, staff, custodians, pool)


def sign_up_company(run_id: str, n: int, centre: TradingCentre) -> User:
    """A company signs up and confirms its e-mail address with the link it was sent."""
    user = register_company(
        company_name=f"Drill Bidder {n} Co., Ltd. ({run_id})",
        registration_number=random_uscc(),
        legal_representative=f"Representative {n}",
        contact_name=f"Contact {n}",
        contact_phone="+86 571 0000 0000",
        home_centre_id=centre.id,
        email=_email(run_id, f"bidder{n}"),
        password=_password(),
    )
    confirm_email(security.make_token(CONFIRM_SALT, {"uid": user.id, "email": user.email}))
    return user


def approve(staff: User, bidder: User) -> None:
    approve_company(staff, bidder.company, "Documents checked (drill).")
