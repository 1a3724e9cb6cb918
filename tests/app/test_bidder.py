"""The bidder's pages: registration for a tender, enquiries, the company profile
(certificates and aliases), notifications."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.companies.models import CompanyAlias, CompanyCertificate, CompanyStatus
from app.core.types import utcnow
from app.extensions import db
from app.tenders import participation
from app.tenders.models import Enquiry, Notification, TenderRegistration


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def bidder(make_user):
    return make_user(Role.BIDDER)


@pytest.fixture
def signed_in(auth, bidder):
    auth.login(bidder)
    return bidder


@pytest.fixture
def tender(make_tender):
    return make_tender()


def register(client, tender):
    return client.post(f"/bidder/tenders/{tender.id}/register")


def test_approved_company_registers_and_sees_the_bond_status(client, signed_in, tender, make_user):
    response = register(client, tender)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/tenders/{tender.id}")
    registration = db.session.scalar(select(TenderRegistration))
    assert (registration.tender_id, registration.company_id) == (tender.id, signed_in.company_id)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tender.registered"))
    assert json.loads(event.data) == {"company_id": signed_in.company_id}

    page = client.get("/bidder/").get_data(as_text=True)
    assert tender.reference in page and tender.title in page
    assert 'data-bond-status="missing"' in page

    staff = make_user(Role.STAFF, centre=tender.centre)
    participation.record_bond(staff, registration, "payment", Decimal("4000.00"), "TX-1")
    db.session.commit()
    assert 'data-bond-status="partial"' in client.get("/bidder/").get_data(as_text=True)
    participation.record_bond(staff, registration, "guarantee", Decimal("6000.00"), "G-7")
    db.session.commit()
    assert 'data-bond-status="paid"' in client.get("/bidder/").get_data(as_text=True)


def test_pending_company_is_refused_with_a_clear_error(
    client, auth, make_user, make_company, tender
):
    pending = make_user(Role.BIDDER, company=make_company(status=CompanyStatus.PENDING))
    auth.login(pending)
    response = register(client, tender)
    assert response.status_code == 403
    assert "registration must be approved" in response.get_data(as_text=True)
    assert count(TenderRegistration) == 0
    page = client.get("/bidder/").get_data(as_text=True)
    assert "once its registration is approved" in page


def test_registering_twice_is_a_conflict(client, signed_in, tender):
    assert register(client, tender).status_code == 302
    response = register(client, tender)
    assert response.status_code == 409
    assert "already registered" in response.get_data(as_text=True)
    assert count(TenderRegistration) == 1


def test_registration_after_the_deadline_is_refused_and_nothing_stored(
    client, signed_in, make_tender
):
    closed = make_tender(days=-1)
    before = count(AuditEvent)
    response = register(client, closed)
    assert response.status_code == 409
    assert "deadline has passed" in response.get_data(as_text=True)
    assert count(TenderRegistration) == 0
    assert count(AuditEvent) == before


def test_drafts_and_unknown_tenders_are_not_found(client, signed_in, make_tender):
    draft = make_tender(status="draft")
    assert register(client, draft).status_code == 404
    assert client.post("/bidder/tenders/999999/register").status_code == 404
    assert count(TenderRegistration) == 0


def test_other_roles_and_anonymous_visitors_are_kept_out(client, auth, make_user, tender):
    response = register(client, tender)
    assert response.status_code == 302 and "/accounts/login" in response.headers["Location"]
    auth.login(make_user(Role.EXPERT))
    assert register(client, tender).status_code == 403
    assert client.get("/bidder/").status_code == 403


def test_registered_bidder_asks_a_question(client, signed_in, tender):
    register(client, tender)
    response = client.post(
        f"/bidder/tenders/{tender.id}/enquiries", data={"question": "Is delivery included?"}
    )
    assert response.status_code == 302
    enquiry = db.session.scalar(select(Enquiry))
    assert enquiry.question == "Is delivery included?"
    assert enquiry.company_id == signed_in.company_id

    empty = client.post(f"/bidder/tenders/{tender.id}/enquiries", data={"question": ""})
    assert empty.status_code == 302
    assert count(Enquiry) == 1


def test_unregistered_bidder_cannot_ask(client, signed_in, tender):
    response = client.post(
        f"/bidder/tenders/{tender.id}/enquiries", data={"question": "Can we bid?"}
    )
    assert response.status_code == 403
    assert "Register your company for this tender" in response.get_data(as_text=True)
    assert count(Enquiry) == 0


def test_no_question_after_the_enquiry_deadline(client, signed_in, tender):
    register(client, tender)
    tender.enquiry_deadline = utcnow() - timedelta(minutes=1)
    db.session.commit()
    response = client.post(f"/bidder/tenders/{tender.id}/enquiries", data={"question": "Late?"})
    assert response.status_code == 409
    assert "enquiry period is over" in response.get_data(as_text=True)
    assert count(Enquiry) == 0


def add_certificate(client, name, expires_on, number="No. 1"):
    return client.post(
        "/bidder/profile/certificates",
        data={
            "name": name,
            "number": number,
            "issued_by": "Provincial bureau",
            "expires_on": expires_on.isoformat() if expires_on else "",
        },
    )


def test_certificates_with_expiry_flags(client, signed_in):
    today = utcnow().date()
    assert add_certificate(client, "ISO 9001", today - timedelta(days=2)).status_code == 302
    assert add_certificate(client, "Safety licence", today + timedelta(days=10)).status_code == 302
    assert add_certificate(client, "Works grade A", today + timedelta(days=400)).status_code == 302
    assert add_certificate(client, "Patent", None).status_code == 302
    states = {c.name: c for c in db.session.scalars(select(CompanyCertificate))}
    assert len(states) == 4

    page = client.get("/bidder/profile").get_data(as_text=True)
    expired = states["ISO 9001"]
    row = page[page.index(f'id="certificate-{expired.id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-state="expired"' in row and "Expired" in row
    row = page[page.index(f'id="certificate-{states["Safety licence"].id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-state="expiring"' in row and "Expires within 30 days" in row
    assert f'id="certificate-{states["Works grade A"].id}" data-state="valid"' in page
    assert f'id="certificate-{states["Patent"].id}" data-state="no_expiry"' in page

    response = client.post(f"/bidder/profile/certificates/{expired.id}/delete")
    assert response.status_code == 302
    assert db.session.get(CompanyCertificate, expired.id) is None


def test_certificate_form_errors_and_other_companies_certificates(client, signed_in, make_company):
    response = add_certificate(client, "ISO 9001", None, number="")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert count(CompanyCertificate) == 0

    foreign = CompanyCertificate(company_id=make_company().id, name="Theirs", number="9")
    db.session.add(foreign)
    db.session.commit()
    response = client.post(f"/bidder/profile/certificates/{foreign.id}/delete")
    assert response.status_code == 404
    assert db.session.get(CompanyCertificate, foreign.id) is not None


def test_aliases_added_listed_and_removed(client, signed_in, make_company):
    assert (
        client.post("/bidder/profile/aliases", data={"alias": "Old Name Ltd."}).status_code == 302
    )
    again = client.post("/bidder/profile/aliases", data={"alias": "Old Name Ltd."})
    assert again.status_code == 409
    assert "already listed" in again.get_data(as_text=True)
    alias = db.session.scalar(select(CompanyAlias))
    assert "Old Name Ltd." in client.get("/bidder/profile").get_data(as_text=True)

    foreign = CompanyAlias(company_id=make_company().id, alias="Someone else")
    db.session.add(foreign)
    db.session.commit()
    assert client.post(f"/bidder/profile/aliases/{foreign.id}/delete").status_code == 404

    assert client.post(f"/bidder/profile/aliases/{alias.id}/delete").status_code == 302
    assert [a.alias for a in db.session.scalars(select(CompanyAlias))] == ["Someone else"]


def test_notifications_listed_and_marked_read(client, signed_in, make_user):
    mine = Notification(user_id=signed_in.id, title="Addendum 1 to tender REF-1", link="")
    other = Notification(user_id=make_user().id, title="Not yours")
    db.session.add_all([mine, other])
    db.session.commit()

    dashboard = client.get("/bidder/").get_data(as_text=True)
    assert "Unread notifications (1)" in dashboard and "Addendum 1 to tender REF-1" in dashboard
    page = client.get("/bidder/notifications").get_data(as_text=True)
    assert "Addendum 1 to tender REF-1" in page and "Not yours" not in page
    assert "Mark as read" in page

    assert client.post(f"/bidder/notifications/{other.id}/read").status_code == 404
    assert other.read_at is None
    response = client.post(f"/bidder/notifications/{mine.id}/read")
    assert response.status_code == 302
    db.session.refresh(mine)
    assert mine.read_at is not None
    assert "Unread notifications (0)" in client.get("/bidder/").get_data(as_text=True)
