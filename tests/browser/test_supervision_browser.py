"""In a real browser: the supervisors' dashboard hears a new envelope over server-sent events
(static/js/supervision_live.js, Redis pub/sub, the strict CSP) and shows the new count
within a second of the commit, without a reload. Only the count: never who bid."""

from __future__ import annotations

import pyotp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from playwright.sync_api import expect

from app.accounts.models import Role
from app.extensions import db
from tests import factories
from tests.factories import PASSWORD
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


def _world(live_app) -> dict:
    with live_app.app_context(), live_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(live_app)
        make_company = factories.make_company.__wrapped__(live_app, make_centre)
        make_user = factories.make_user.__wrapped__(live_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(live_app, make_centre, make_user)
        city = make_centre(level="city")
        tender = make_tender(centre=city, title="Watched bridge")
        bidder = registered_bidder(make_user, tender)
        supervisor = make_user(Role.SUPERVISOR, centre_id=city.id)
        world = {
            "tender_id": tender.id,
            "bidder_id": bidder.id,
            "company": bidder.company.name,
            "email": supervisor.email,
            "secret": supervisor.totp_secret,
        }
        db.session.remove()
        return world


def _submit(live_app, world) -> None:
    from app.accounts.models import User
    from app.tenders.models import Tender

    with live_app.app_context(), live_app.test_request_context():
        tender = db.session.get(Tender, world["tender_id"])
        bidder = db.session.get(User, world["bidder_id"])
        key = X25519PublicKey.from_public_bytes(public_key(tender))
        submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder), price="900.00"))
        db.session.remove()


def test_the_dashboard_shows_a_new_envelope_count_live(live_app, live_server, browser):
    world = _world(live_app)
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(world["email"])
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#code").fill(pyotp.TOTP(world["secret"]).now())
    page.get_by_role("button", name="Verify").click()
    # Signed in: a supervisor's start page is the dashboard.
    expect(page.locator("#live-state")).to_be_attached()
    page.wait_for_load_state("load")

    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    page.goto(live_server + "/supervision/")
    count = page.locator(f'[data-envelopes="{world["tender_id"]}"]')
    expect(count).to_have_text("0")
    expect(page.locator("#live-state")).to_have_attribute("data-live", "1")
    # The stream is open (its first summary arrived) before the envelope comes.
    expect(page.locator("#live-state")).to_have_attribute("data-stream", "open")

    _submit(live_app, world)
    expect(count).to_have_text("1", timeout=1_000)
    expect(page.locator('[data-total="envelopes"]')).to_have_text("1")
    assert world["company"] not in page.content()
    assert len(loads) == 1  # no reload
    assert problems == []
    context.close()
