"""In a real browser: staff watch the evaluation record being made (the status polled by
record_progress.js, no inline script), then a panel member countersigns it with a fresh
code from their authenticator app, and the signed file downloads with both signatures."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import expect

from app.extensions import db
from app.records import jobs, operations, signing
from app.records.models import EvaluationRecord, RecordStatus
from app.tenders.models import Tender
from tests import factories
from tests.factories import PASSWORD
from tests.factories.records import build_finalised


def _setup(live_app) -> dict:
    with live_app.app_context(), live_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(live_app)
        make_company = factories.make_company.__wrapped__(live_app, make_centre)
        make_user = factories.make_user.__wrapped__(live_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(live_app, make_centre, make_user)
        built = build_finalised(make_tender, make_user, make_company, experts=3)
        # A record caught mid-way, as a worker would leave it between two steps.
        record = EvaluationRecord(
            tender_id=built.tender.id,
            round=1,
            status=RecordStatus.RENDERING,
            progress=40,
            step="rendering",
            requested_by_id=built.staff.id,
            error="",
            superseded_reason="",
        )
        db.session.add(record)
        db.session.commit()
        return {
            "tender_id": built.tender.id,
            "record_id": record.id,
            "staff": {"email": built.staff.email, "secret": built.staff.totp_secret},
            "expert": {"email": built.experts[1].email, "secret": built.experts[1].totp_secret},
        }


def _sign_in(browser, live_server, who: dict):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(who["email"])
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#code").fill(pyotp.TOTP(who["secret"]).now())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Start page")).to_be_visible()  # signed in
    return context, page, problems


def test_progress_then_countersignature_in_the_browser(live_app, live_server, browser):
    data = _setup(live_app)
    url = f"{live_server}/records/tenders/{data['tender_id']}"

    context, page, problems = _sign_in(browser, live_server, data["staff"])
    page.goto(url)
    expect(page.locator("#record-progress")).to_have_attribute("value", "40")
    # The worker finishes: the page hears of it without a reload.
    with live_app.app_context():
        assert jobs.render_record(data["record_id"]) == "signed"
    expect(page.locator(".record-status-text")).to_have_text(
        "The record is ready. Refresh the page to download it.", timeout=20_000
    )
    page.reload()
    expect(page.get_by_role("cell", name="platform", exact=True)).to_be_visible()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()

    context, page, problems = _sign_in(browser, live_server, data["expert"])
    page.goto(url)
    # A wrong code is refused; nothing is signed.
    page.locator("#code").fill("000000")
    page.get_by_role("button", name="Countersign the record").click()
    expect(page.locator(".notice.error")).to_be_visible()
    expect(page.get_by_role("cell", name="member-2", exact=True)).to_have_count(0)
    # The next code (signing in used the current one) signs.
    page.locator("#code").fill(pyotp.TOTP(data["expert"]["secret"]).at(time.time() + 30))
    page.get_by_role("button", name="Countersign the record").click()
    expect(page.locator(".notice.success")).to_contain_text("You have countersigned the record.")
    expect(page.get_by_role("cell", name="member-2", exact=True)).to_be_visible()
    response = page.request.get(f"{url}/record.pdf")
    assert response.ok
    pdf = response.body()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()

    with live_app.app_context():
        assert signing.signatures_ok(pdf, expected=2)
        record = operations.current_record(db.session.get(Tender, data["tender_id"]))
        assert record.status == RecordStatus.SIGNED  # two members still to sign
