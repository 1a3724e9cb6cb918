"""Sign-up, e-mail confirmation, sign-in with a second factor, sign-out, password reset."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import func, select

from app.accounts.models import Role, User
from app.audit import AuditEvent, verify_chain
from app.companies.models import Company, CompanyStatus
from app.extensions import db
from tests.conftest import totp_now
from tests.factories import PASSWORD
from tests.factories.accounts import signup_form


def link_in(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def test_sign_up_confirm_and_sign_in(client, make_centre, outbox):
    centre = make_centre()
    response = client.post("/accounts/signup", data=signup_form(centre))
    assert response.status_code == 200
    assert b"li.si@bridges.example" in response.data

    company = db.session.scalar(select(Company))
    assert company.status == CompanyStatus.PENDING
    assert company.home_centre_id == centre.id
    user = db.session.scalar(select(User).where(User.email == "li.si@bridges.example"))
    assert user.role == Role.BIDDER and user.email_confirmed_at is None
    assert user.password_hash.startswith("$argon2")

    # Unconfirmed accounts cannot sign in yet.
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert b"Confirm your e-mail address first" in response.data

    assert len(outbox) == 1
    link = link_in(outbox[0])
    assert client.get(link).status_code == 302
    db.session.refresh(user)
    assert user.email_confirmed_at is not None

    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    page = client.get("/accounts/profile")
    assert b"Waiting for the trading centre" in page.data
    assert verify_chain() is None
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["company.registered", "user.email_confirmed", "auth.signed_in"]


def test_duplicate_registration_number_is_refused_and_nothing_stored(client, make_company):
    existing = make_company()
    centre_id = existing.home_centre_id
    before = db.session.scalar(select(func.count(User.id)))
    form = signup_form(existing.home_centre, registration_number=existing.registration_number)
    form["home_centre_id"] = str(centre_id)
    response = client.post("/accounts/signup", data=form)
    assert response.status_code == 200
    assert b"already registered" in response.data
    assert db.session.scalar(select(func.count(User.id))) == before
    assert db.session.scalar(select(func.count(Company.id))) == 1


def test_invalid_registration_number_is_refused(client, make_centre):
    response = client.post(
        "/accounts/signup",
        data=signup_form(make_centre(), registration_number="91330100MA0000000X"),
    )
    assert response.status_code == 400
    assert b"not a valid unified social credit code" in response.data
    assert db.session.scalar(select(func.count(Company.id))) == 0


def test_forged_confirmation_link_is_refused(client):
    response = client.get("/accounts/confirm/not-a-real-token")
    assert response.status_code == 400
    assert b"invalid or has expired" in response.data


def test_wrong_password_is_refused_and_audited(client, make_user):
    user = make_user()
    response = client.post("/accounts/login", data={"email": user.email, "password": "wrong-pass!"})
    assert response.status_code == 401
    assert b"Wrong e-mail address or password" in response.data
    event = db.session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()))
    assert event.action == "auth.sign_in_failed"
    assert "wrong-pass" not in event.data


def test_privileged_user_enrols_totp_at_first_sign_in(client, make_user):
    staff = make_user(Role.STAFF, totp=False)
    response = client.post("/accounts/login", data={"email": staff.email, "password": PASSWORD})
    assert response.headers["Location"].endswith("/accounts/two-factor")
    page = client.get("/accounts/two-factor")
    assert b"<svg" in page.data
    secret = re.search(rb'id="totp-secret">([A-Z2-7]+)<', page.data).group(1).decode()
    # Nothing is reachable before the second factor is done.
    assert client.get("/accounts/profile").status_code == 302
    response = client.post("/accounts/two-factor", data={"code": "000000"})
    assert b"does not match" in response.data
    response = client.post("/accounts/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    assert client.get("/accounts/profile").status_code == 200
    db.session.refresh(staff)
    assert staff.has_totp and staff.totp_secret == secret


def test_totp_code_cannot_be_replayed(client, make_user):
    staff = make_user(Role.STAFF)
    code = totp_now(staff)
    client.post("/accounts/login", data={"email": staff.email, "password": PASSWORD})
    assert client.post("/accounts/two-factor", data={"code": code}).status_code == 302
    client.post("/accounts/logout")
    client.post("/accounts/login", data={"email": staff.email, "password": PASSWORD})
    response = client.post("/accounts/two-factor", data={"code": code})
    assert response.status_code == 401
    assert b"not valid" in response.data


def test_password_reset(client, make_user, outbox):
    user = make_user()
    response = client.post("/accounts/reset", data={"email": user.email})
    assert response.status_code == 302
    # Unknown addresses get the same answer and no e-mail.
    client.post("/accounts/reset", data={"email": "nobody@example.com"})
    assert len(outbox) == 1
    link = link_in(outbox[0])
    new = "a much better password"
    response = client.post(link, data={"password": new, "confirm": new})
    assert response.status_code == 302
    # The link works once.
    response = client.post(link, data={"password": new + "2", "confirm": new + "2"})
    assert response.status_code == 400
    assert (
        client.post("/accounts/login", data={"email": user.email, "password": new}).status_code
        == 302
    )


def test_logout_needs_post(auth, client, make_user):
    auth.login(make_user())
    assert client.get("/accounts/logout").status_code == 405
    assert client.post("/accounts/logout").status_code == 302
    assert client.get("/accounts/profile").status_code == 302
