"""In a real browser: an anonymous watcher of a bid opening sees the ceremony start, the
custodians' shares come in (k of n), each line and the record appear, all without a
reload; once the ceremony is over the page makes no more requests, and a page loaded on
the finished ceremony opens no stream at all."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from playwright.sync_api import expect

from app.core.types import utcnow
from app.extensions import db
from app.opening import operations as ops
from app.tenders.models import Tender
from tests import factories
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc
from tests.factories.opening import custodians, start, unlock

PRICES = ["1100.00", "1200.00", "1300.00"]


def _closed_tender_with_three_bids(live_app) -> int:
    with live_app.app_context(), live_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(live_app)
        make_company = factories.make_company.__wrapped__(live_app, make_centre)
        make_user = factories.make_user.__wrapped__(live_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(live_app, make_centre, make_user)
        tender = make_tender(title="Live opening of street lamps")
        key = X25519PublicKey.from_public_bytes(public_key(tender))
        for price in PRICES:
            bidder = registered_bidder(make_user, tender)
            submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder), price=price))
        now = utcnow()
        tender.submission_deadline = now - timedelta(hours=2)
        tender.opening_at = now - timedelta(hours=1)
        db.session.commit()
        return tender.id


def _step(live_app, tender_id: int, action) -> None:
    """Staff or a custodian acts (through the operations, as their forms do)."""
    with live_app.app_context(), live_app.test_request_context():
        action(db.session.get(Tender, tender_id))
        db.session.remove()


def test_an_anonymous_watcher_sees_the_whole_ceremony_live(live_app, live_server, browser):
    tender_id = _closed_tender_with_three_bids(live_app)
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    url = f"{live_server}/opening/tenders/{tender_id}"

    with page.expect_response(lambda response: "/events" in response.url):
        page.goto(url)  # the stream is subscribed once its headers arrive
    live = page.locator("#opening-live")
    message = live.locator(".opening-message")
    shares = live.locator(".opening-shares")
    lines = page.locator("#opening-lines tr")
    expect(message).to_have_text("The ceremony has not started.")
    expect(page.locator("#opening-lines-section")).to_be_hidden()

    _step(live_app, tender_id, start)
    expect(message).to_have_text("Waiting for the key custodians.")
    expect(shares).to_have_text("0 of the 2 shares needed are unlocked.")
    expect(live.locator(".opening-count")).to_have_text("0 / 3")

    _step(live_app, tender_id, lambda tender: unlock(tender, custodians(tender)[0]))
    expect(shares).to_have_text("1 of the 2 shares needed are unlocked.")

    # The k-th share: the opening job runs.
    _step(live_app, tender_id, lambda tender: unlock(tender, custodians(tender)[1]))
    expect(lines).to_have_count(3)
    # Drawn by the script as the server draws them: statuses and money in words.
    for row, price in zip(lines.all(), PRICES, strict=True):
        expect(row.locator("td").nth(3)).to_have_text(f"CN¥{int(float(price)):,}.00")
        expect(row.locator("td").nth(2)).to_have_text("Opened")
    drawn_live = [row.inner_text() for row in lines.all()]
    with live_app.app_context():
        record = ops.record_of(db.session.get(Tender, tender_id))
        sha256 = record.sha256
        db.session.remove()
    expect(page.locator(".opening-record")).to_contain_text(f"SHA-256: {sha256}")
    expect(page.locator(".opening-record a")).to_have_attribute(
        "href", f"/opening/tenders/{tender_id}/record.json"
    )
    expect(message).to_have_text("The bids are open.")
    expect(live.locator(".opening-count")).to_have_text("3 / 3")
    expect(shares).to_be_hidden()

    # Over: the stream is closed and nothing is asked again (the reconnection delay is 3 s).
    seen = len(requests)
    page.wait_for_timeout(8_000)
    assert requests[seen:] == []
    assert [u for u in requests if u.endswith("/events")] == [f"{url}/events"]

    # A page loaded on the finished ceremony shows it all and opens no stream.
    requests.clear()
    page.goto(url)
    expect(lines).to_have_count(3)
    expect(message).to_have_text("The bids are open.")
    assert [row.inner_text() for row in lines.all()] == drawn_live
    page.wait_for_timeout(8_000)
    assert not [u for u in requests if "/events" in u]
    assert problems == []
    context.close()
