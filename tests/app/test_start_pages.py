"""Each role's start page lists what needs its action now; tender pages know their stage:
the staff's next action, no addendum after the deadline, no link to a page that does not
exist yet, a stage timeline, why a failed tender failed, how an anonymous visitor takes
part."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from app.accounts.models import Role
from app.companies.models import CompanyStatus
from app.core.types import utcnow
from app.extensions import db
from app.opening.models import OpeningSession, OpeningStatus
from app.tenders.models import TenderStatus
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


def test_sign_in_lands_on_the_start_page(client, make_user):
    bidder = make_user(Role.BIDDER)
    response = client.post(
        "/accounts/login", data={"email": bidder.email, "password": "correct horse battery"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/start"
    assert client.get("/accounts/login").headers["Location"] == "/start"


def test_the_start_page_needs_a_signed_in_person(client):
    response = client.get("/start")
    assert response.status_code == 302 and "/accounts/login" in response.headers["Location"]


def test_a_bidder_sees_the_bid_to_submit_then_the_bid_received(
    client, auth, make_user, make_tender
):
    tender = make_tender(title="Desks for the library")
    bidder = registered_bidder(make_user, tender)
    auth.login(bidder)
    page = client.get("/start").get_data(as_text=True)
    to_bid = page.split('id="start-to-bid"')[1].split("</section>")[0]
    assert "Desks for the library" in to_bid and f"/bids/tenders/{tender.id}" in to_bid

    key = X25519PublicKey.from_public_bytes(public_key(tender))
    submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder), price="900.00"))
    page = client.get("/start").get_data(as_text=True)
    to_bid = page.split('id="start-to-bid"')[1].split("</section>")[0]
    received = page.split('id="start-submitted"')[1].split("</section>")[0]
    assert "Desks for the library" not in to_bid and "Desks for the library" in received


def test_staff_see_companies_to_approve_and_tenders_by_next_action(
    client, auth, make_centre, make_company, make_user, make_tender
):
    centre = make_centre()
    make_company(centre=centre, status=CompanyStatus.PENDING, name="Waiting Works Ltd.")
    make_company(status=CompanyStatus.PENDING, name="Other Centre Ltd.")
    tender = make_tender(centre=centre, title="Bridge repairs", status=TenderStatus.CLOSED)
    auth.login(make_user(Role.STAFF, centre=centre))
    page = client.get("/start").get_data(as_text=True)
    companies = page.split('id="start-companies"')[1].split("</section>")[0]
    assert "Waiting Works Ltd." in companies and "Other Centre Ltd." not in companies
    tenders = page.split('id="start-tenders"')[1].split("</section>")[0]
    assert "Bridge repairs" in tenders and "Start the public opening" in tenders
    assert f"/opening/tenders/{tender.id}" in tenders


def test_a_custodian_sees_the_ceremony_due(client, auth, make_tender):
    tender = make_tender(title="Opening soon", status=TenderStatus.CLOSED)
    custodian = tender.custodians[0].user_id
    from app.accounts.models import User

    auth.login(db.session.get(User, custodian))
    page = client.get("/start").get_data(as_text=True)
    due = page.split('id="start-ceremonies"')[1].split("</section>")[0]
    assert "Opening soon" in due and f"/opening/tenders/{tender.id}" in due


def test_supervisors_start_on_their_dashboard_and_admins_on_accounts(client, auth, make_user):
    auth.login(make_user(Role.SUPERVISOR))
    response = client.get("/start")
    assert response.status_code == 302 and response.headers["Location"] == "/supervision/"
    auth.logout()
    auth.login(make_user(Role.ADMIN))
    page = client.get("/start").get_data(as_text=True)
    assert 'id="account-counts"' in page and "/admin/users" in page


def test_an_expert_with_nothing_to_do_is_told_so(client, auth, make_user):
    auth.login(make_user(Role.EXPERT))
    page = client.get("/start").get_data(as_text=True)
    assert "No invitation waits for an answer." in page
    assert "No score sheet is open for you." in page


def test_staff_tender_page_follows_the_stage(client, auth, make_centre, make_user, make_tender):
    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    open_tender = make_tender(centre=centre)
    auth.login(staff)
    page = client.get(f"/centre/tenders/{open_tender.id}").get_data(as_text=True)
    assert 'id="next-action"' in page and 'id="addendum"' in page
    assert 'id="timeline"' in page and 'aria-current="step"' in page
    # Nothing after publication exists yet: no opening, ranking or record link.
    assert f"/scoring/tenders/{open_tender.id}/results" not in page
    assert f"/opening/tenders/{open_tender.id}" not in page

    # After the deadline: no addendum form; the opening exists, the ranking does not yet.
    open_tender.submission_deadline = utcnow() - timedelta(minutes=1)
    open_tender.status = TenderStatus.CLOSED
    db.session.commit()
    page = client.get(f"/centre/tenders/{open_tender.id}").get_data(as_text=True)
    assert 'id="addendum"' not in page
    assert f"/opening/tenders/{open_tender.id}" in page
    assert f"/scoring/tenders/{open_tender.id}/results" not in page
    assert f"/records/tenders/{open_tender.id}" not in page


def test_a_failed_tender_says_why_and_an_open_one_tells_visitors_how_to_take_part(
    client, make_tender
):
    tender = make_tender(title="Too few bids")
    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="take-part"' in page and "/accounts/signup" in page

    tender.status = TenderStatus.FAILED
    db.session.add(
        OpeningSession(
            tender_id=tender.id,
            started_by_id=tender.created_by_id,
            started_at=utcnow(),
            completed_at=utcnow(),
            status=OpeningStatus.FAILED,
            wrap_salt="00" * 32,
            reason="0 bid(s) received by the deadline; at least 3 are needed",
        )
    )
    db.session.commit()
    for url in (f"/tenders/{tender.id}", f"/results/tenders/{tender.id}"):
        page = client.get(url).get_data(as_text=True)
        assert 'id="failure-reason"' in page, url
        assert "The tender failed at its opening" in page, url
    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="take-part"' not in page
    assert 'data-step="failed"' in page


@pytest.mark.parametrize("code, word", [("ko", "시작 페이지"), ("zh_Hans", "开始页面")])
def test_the_start_page_in_korean_and_chinese(client, auth, make_user, code, word):
    auth.login(make_user(Role.EXPERT))
    client.set_cookie("fairbid_lang", code)
    assert word in client.get("/start").get_data(as_text=True)


def test_a_company_that_never_bid_sees_no_sealing_material_on_a_closed_tender(
    client, auth, make_user, make_tender
):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    auth.login(bidder)
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    # Open: the command line and the envelope upload are folded into "Advanced" (the
    # browser form, first on the page, needs a template with commercial fields).
    assert 'id="advanced"' in page
    assert page.index('id="envelope-upload"') > page.index('id="advanced"')
    assert page.index('id="envelope-tender"') > page.index('id="advanced"')

    tender.submission_deadline = utcnow() - timedelta(minutes=1)
    tender.status = TenderStatus.CLOSED
    db.session.commit()
    page = client.get(f"/bids/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="closed"' in page
    for material in ('id="advanced"', "envelope-tender", "python -m bidding", 'id="seal"'):
        assert material not in page, material
