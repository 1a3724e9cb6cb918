"""In a real browser: the public page of a tender whose deadline has just passed, opened
before the clock ticks, shows "Bidding closed" and then the sealing record's Merkle root
when the clock closes and seals the tender, without a reload (static/js/tender_live.js,
polling the page's status.json under the strict CSP)."""

from __future__ import annotations

import json
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from playwright.sync_api import expect
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.clock.service import tick
from app.core.types import utcnow
from app.extensions import db
from app.tenders.models import Tender
from tests import factories
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


def _tender_past_its_deadline(live_app) -> tuple[int, object]:
    """A published tender with one sealed bid, whose deadline passed a moment ago and that
    no clock has closed yet (the demo's bug: "Open for bids" after the deadline)."""
    with live_app.app_context(), live_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(live_app)
        make_company = factories.make_company.__wrapped__(live_app, make_centre)
        make_user = factories.make_user.__wrapped__(live_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(live_app, make_centre, make_user)
        tender = make_tender(title="Clock watched road")
        bidder = registered_bidder(make_user, tender)
        key = X25519PublicKey.from_public_bytes(public_key(tender))
        submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder), price="900.00"))
        deadline = utcnow() - timedelta(seconds=2)
        tender.submission_deadline = deadline
        tender.opening_at = deadline + timedelta(hours=1)
        db.session.commit()
        return tender.id, deadline


def _tick(live_app, now):
    with live_app.app_context():
        report = tick(now)
        db.session.remove()
        return report


def test_the_portal_page_shows_the_close_and_the_merkle_root_without_a_reload(
    live_app, live_server, browser, monkeypatch
):
    monkeypatch.setitem(live_app.config, "PORTAL_STATUS_POLL_SECONDS", 1)
    tender_id, deadline = _tender_past_its_deadline(live_app)

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    page.goto(f"{live_server}/tenders/{tender_id}")
    status = page.locator("#tender-status")
    expect(status).to_have_text("Open for bids")  # nobody has ticked yet
    expect(page.locator("#sealing-record")).to_be_hidden()

    # The bid deadline: the clock closes the tender; the open page follows.
    report = _tick(live_app, deadline + timedelta(seconds=3))
    assert ("close", tender_id) in report.performed
    expect(status).to_have_text("Bidding closed")
    expect(page.locator("#sealing-record")).to_be_hidden()  # the grace is still running

    # The end of the sealing grace: the signed sealing record appears with its root.
    grace = timedelta(seconds=live_app.config["SEALING_GRACE_SECONDS"])
    report = _tick(live_app, deadline + grace + timedelta(seconds=1))
    assert ("seal", tender_id) in report.performed
    with live_app.app_context():
        sealed = db.session.scalar(
            select(AuditEvent.data).where(
                AuditEvent.action == "tender.sealed", AuditEvent.object_id == str(tender_id)
            )
        )
        db.session.remove()
    root = json.loads(sealed)["root"]
    expect(page.locator("#sealing-record")).to_be_visible()
    expect(page.locator("#sealing-root")).to_have_text(root)
    expect(page.locator("#sealing-download")).to_have_attribute(
        "href", f"/api/v1/tenders/{tender_id}/sealing-record"
    )
    expect(status).to_have_text("Bidding closed")
    assert len(loads) == 1, loads  # never reloaded
    assert problems == [], problems  # nothing refused by the CSP, no script error
    context.close()


def test_far_from_the_deadline_the_page_asks_rarely(live_app, live_server, browser, monkeypatch):
    """An open page polls every few seconds only around the deadline; an hour before it,
    it asks once per ten minutes (the browser's clock is Playwright's: nothing sleeps)."""
    monkeypatch.setitem(live_app.config, "PORTAL_STATUS_POLL_SECONDS", 1)
    tender_id, _ = _tender_past_its_deadline(live_app)
    with live_app.app_context():
        tender = db.session.get(Tender, tender_id)
        tender.submission_deadline = utcnow() + timedelta(hours=1)
        tender.opening_at = tender.submission_deadline + timedelta(hours=1)
        db.session.commit()
        db.session.remove()

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.clock.install()
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "status.json" in r.url else None)
    page.goto(f"{live_server}/tenders/{tender_id}")
    expect(page.locator("#tender-status")).to_have_text("Open for bids")
    page.clock.run_for("09:00")
    assert polls == []  # a second-by-second poll would have asked 540 times
    with page.expect_request(lambda r: "status.json" in r.url):
        page.clock.run_for("01:05")
    expect(page.locator("#tender-status")).to_have_text("Open for bids")
    assert len(polls) == 1
    context.close()
