"""In a real browser: an expert declares no conflict, reads and scores the anonymised bids
under their codes, hits the justification rule (a maximum without a reason), saves and
locks; the chair locks too (the third member through the service layer), reveals the
identities, and the bidders' names appear next to their codes."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import expect

from app.accounts.models import User
from app.bids.jobs import seal_tender
from app.evaluations import operations, queries
from app.extensions import db
from app.opening import operations as opening_ops
from app.opening.jobs import enqueue_opening
from app.panels.models import PanelMember
from app.tenders.models import Tender
from tests import factories
from tests.conftest import run_queued_jobs
from tests.factories import CUSTODIAN_PASSPHRASE, PASSWORD
from tests.factories.bids import registered_bidder, submit
from tests.factories.evaluations import record_bond, seal_bid, seat_panel, use_goods_template
from tests.factories.opening import custodians, past_opening, staff_of
from tests.factories.scoring import confirm_review, fill_sheet, lock

NAMES = ["Ostrowind Pumps", "Calderby Valves", "Fenwick Meridian Flow"]
PRICES = ["612000.00", "598500.00", "605250.00"]


def _fresh() -> None:
    """End the session's transaction: the opening's inline jobs commit in sessions of their
    own, and an SQLite snapshot older than their commits could not write any more."""
    db.session.commit()
    db.session.rollback()


def _opened(make_tender, make_user) -> tuple[int, list]:
    """`opened_tender`'s steps, with the caller's session ended around each inline job."""
    tender = use_goods_template(make_tender())
    tender_id = tender.id
    bidders = [registered_bidder(make_user, tender) for _ in PRICES]
    for bidder, price in zip(bidders, PRICES, strict=True):
        submit(tender, bidder, seal_bid(tender, bidder, price))
        record_bond(tender, bidder)
    past_opening(tender)
    opening_ops.start_opening(staff_of(tender), tender)
    _fresh()
    seal_tender(tender_id)
    _fresh()
    for custodian in custodians(db.session.get(Tender, tender_id)):
        ready = opening_ops.unlock_share(
            custodian, db.session.get(Tender, tender_id), CUSTODIAN_PASSPHRASE
        )
        _fresh()
        if ready:
            enqueue_opening(tender_id)
            run_queued_jobs()
            _fresh()
    return tender_id, [b.id for b in bidders]


def _setup(live_app) -> dict:
    """An opened goods tender (real envelopes, real ceremony) with three bidders of
    distinctive names and a panel of three; seat 2 has accepted but not declared yet."""
    with live_app.app_context(), live_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(live_app)
        make_company = factories.make_company.__wrapped__(live_app, make_centre)
        make_user = factories.make_user.__wrapped__(live_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(live_app, make_centre, make_user)
        tender_id, bidder_ids = _opened(make_tender, make_user)
        tender = db.session.get(Tender, tender_id)
        assert tender.status == "opened"
        for user_id, name in zip(bidder_ids, NAMES, strict=True):
            db.session.get(User, user_id).company.name = name + " Ltd."
        db.session.commit()
        experts = seat_panel(make_user, tender, 3)
        member = db.session.query(PanelMember).filter_by(user_id=experts[1].id).one()
        member.conflict_declared_at = None
        data = {
            "tender_id": tender_id,
            "experts": [{"id": e.id, "email": e.email, "secret": e.totp_secret} for e in experts],
        }
        _fresh()
        return data


def _start_scoring(live_app, tender_id: int) -> list[str]:
    """Staff start the evaluation and the chair confirms the review (service layer)."""
    with live_app.app_context(), live_app.test_request_context():
        tender = db.session.get(Tender, tender_id)
        chair = db.session.scalars(
            db.select(User)
            .join(PanelMember, PanelMember.user_id == User.id)
            .where(PanelMember.tender_id == tender_id, PanelMember.position == 1)
        ).one()
        operations.start_evaluation(staff_of(tender), tender, chair=chair)
        _fresh()
        confirm_review(db.session.get(Tender, tender_id), chair)
        _fresh()
        return [b.code for b in queries.evaluated_bids(db.session.get(Tender, tender_id))]


def _service(live_app, tender_id: int, action) -> None:
    with live_app.app_context(), live_app.test_request_context():
        tender = db.session.get(Tender, tender_id)
        members = {
            m.position: db.session.get(User, m.user_id)
            for m in db.session.query(PanelMember).filter_by(tender_id=tender_id)
        }
        action(tender, members)
        _fresh()


def _sign_in(browser, live_server, expert: dict):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(expert["email"])
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#code").fill(pyotp.TOTP(expert["secret"]).now())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Start page")).to_be_visible()  # signed in
    return context, page


def _score_bid(page, live_server, tender_id, code, criteria, training_reason=True):
    page.goto(f"{live_server}/scoring/tenders/{tender_id}/bids/{code}")
    expect(page).to_have_title(re.compile(code))
    for c in criteria:
        page.locator(f"#score_{c['key']}").fill(c["value"])
    if training_reason:
        page.locator("#reason_training").fill("Complete training plan with manuals.")
    page.get_by_role("button", name="Save draft").click()


def test_blind_scoring_in_the_browser(live_app, live_server, browser):
    data = _setup(live_app)
    tender_id = data["tender_id"]
    chair, expert, _third = data["experts"]

    # The expert signs the conflict declaration on the invitations page.
    context, page = _sign_in(browser, live_server, expert)
    page.goto(live_server + "/panels/invitations")
    page.locator("#no_conflict").check()
    page.get_by_role("button", name="Sign the declaration").click()
    expect(page.locator(".notice.success")).to_contain_text("declaration has been signed")

    codes = _start_scoring(live_app, tender_id)
    criteria = [
        {"key": "specification_compliance", "value": "20"},
        {"key": "quality_assurance", "value": "7"},
        {"key": "delivery_installation", "value": "8.5"},
        {"key": "after_sales_service", "value": "6"},
        {"key": "training", "value": "5"},  # the maximum: needs a reason
    ]

    page.goto(live_server + "/scoring/")
    page.get_by_role("link", name="Open my score sheet").click()
    for code in codes:
        expect(page.get_by_role("link", name=code, exact=True)).to_be_visible()
    body = page.content()
    assert not any(name in body for name in NAMES)
    assert not any(price in body for price in PRICES)

    # The technical part opens in the browser under its code.
    response = page.request.get(
        f"{live_server}/scoring/tenders/{tender_id}/bids/{codes[0]}/document"
    )
    assert response.ok and response.body().startswith(b"%PDF-")
    assert response.headers["content-disposition"] == f'inline; filename="{codes[0]}.pdf"'

    # A maximum without a reason is refused and nothing is saved.
    _score_bid(page, live_server, tender_id, codes[0], criteria, training_reason=False)
    expect(page.locator("#score_training-error")).to_contain_text("needs a written reason")
    expect(page.locator(".notice.error")).to_contain_text("Nothing was saved")
    # With the reason it saves; then the other bids.
    page.locator("#reason_training").fill("Complete training plan with manuals.")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".notice.success")).to_contain_text(f"draft scores for {codes[0]}")
    for code in codes[1:]:
        _score_bid(page, live_server, tender_id, code, criteria)
        expect(page.locator(".notice.success")).to_contain_text(f"draft scores for {code}")
    assert not any(name in page.content() for name in NAMES)

    page.goto(f"{live_server}/scoring/tenders/{tender_id}")
    expect(page.locator("caption")).to_contain_text("Scored 15 of 15")
    page.get_by_role("button", name="Submit and lock my sheet").click()
    expect(page.get_by_text("Your sheet is submitted and locked.")).to_be_visible()
    page.goto(f"{live_server}/scoring/tenders/{tender_id}/bids/{codes[0]}")
    expect(page.locator("#score_training")).to_have_count(0)  # read-only once locked
    context.close()

    # The chair: progress only, then locks; the third member through the service layer.
    # The others give 4.5 for training, so the expert's 5 is no outlier.
    training = {(code, "training"): "4.5" for code in codes}
    _service(live_app, tender_id, lambda tender, m: fill_sheet(m[1], tender, training))
    chair_context, chair_page = _sign_in(browser, live_server, chair)
    chair_page.goto(f"{live_server}/scoring/tenders/{tender_id}/panel")
    expect(chair_page.get_by_text("shown once every member has locked")).to_be_visible()
    chair_page.goto(f"{live_server}/scoring/tenders/{tender_id}")
    chair_page.get_by_role("button", name="Submit and lock my sheet").click()
    expect(chair_page.get_by_text("Your sheet is submitted and locked.")).to_be_visible()

    def third_locks(tender, members):
        fill_sheet(members[3], tender, training)
        lock(members[3], tender)

    _service(live_app, tender_id, third_locks)
    chair_page.goto(f"{live_server}/scoring/tenders/{tender_id}/panel")
    expect(chair_page.locator("figure svg").first).to_be_visible()
    assert not any(name in chair_page.content() for name in NAMES)
    chair_page.get_by_role("button", name="Reveal the identities and rank the bids").click()

    # The identities appear, with the codes, the ranking and the top three.
    expect(chair_page.get_by_role("heading", name="Evaluation results")).to_be_visible()
    for name in NAMES:
        expect(chair_page.get_by_role("cell", name=name + " Ltd.")).to_be_visible()
    for code in codes:
        expect(chair_page.get_by_role("cell", name=code, exact=True)).to_be_visible()
    expect(chair_page.locator("section ol li")).to_have_count(3)
    # Equal technical scores: the lowest price ranks first.
    expect(chair_page.locator("section ol li").first).to_contain_text("Calderby Valves")
    chair_context.close()

    with live_app.app_context():
        tender = db.session.get(Tender, tender_id)
        assert queries.evaluation_of(tender).stage == "unblinded"
        assert queries.all_locked(tender)
