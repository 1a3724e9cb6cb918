"""In a real browser: staff watch the evaluation record being made (the status polled by
record_progress.js, no inline script), then a panel member makes their signing key in the
browser (WebCrypto, non-extractable, kept in IndexedDB; member_key.js), gets a certificate
from the platform CA, and countersigns the record with that key and a fresh code from their
authenticator app; the signed file validates with pdfsig and pyHanko, the member's
certificate chained to the platform CA."""

from __future__ import annotations

import pyotp
from playwright.sync_api import expect

from app.accounts.models import User
from app.extensions import db
from app.records import jobs, member_keys, operations, signing
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
            "expert": {
                "id": built.experts[1].id,
                "email": built.experts[1].email,
                "secret": built.experts[1].totp_secret,
            },
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
    expect(page.get_by_role("cell", name="Platform", exact=True).first).to_be_visible()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()

    context, page, problems = _sign_in(browser, live_server, data["expert"])
    page.goto(url)
    expect(page.get_by_text("first make your signing key")).to_be_visible()
    page.get_by_role("link", name="Your signing key").click()
    # Enrolment: the key is made here; the code confirms it.
    page.locator("#code").fill(_fresh_code(live_app, data["expert"]))
    page.get_by_role("button", name="Create my signing key in this browser").click()
    expect(page.locator(".notice.success")).to_contain_text("Your signing key is enrolled")
    expect(page.get_by_text("valid until")).to_be_visible()
    # The private key is in IndexedDB and cannot be exported.
    kept = page.evaluate(KEY_PROBE, data["expert"]["id"])
    assert kept == {"found": True, "extractable": False, "exported": False, "type": "private"}

    page.goto(url)
    # A wrong code is refused; nothing is signed.
    page.locator("#code").fill("000000")
    page.get_by_role("button", name="Countersign the record with my key").click()
    expect(page.locator(".member-key-message")).to_contain_text("not valid")
    expect(page.get_by_role("cell", name="Member 2", exact=True)).to_have_count(0)
    page.locator("#code").fill(_fresh_code(live_app, data["expert"]))
    page.get_by_role("button", name="Countersign the record with my key").click()
    expect(page.locator(".notice.success")).to_contain_text("You have countersigned the record.")
    expect(page.get_by_role("cell", name="Member 2", exact=True)).to_be_visible()
    response = page.request.get(f"{url}/record.pdf")
    assert response.ok
    pdf = response.body()
    assert not [p for p in problems if "Content Security Policy" in p], problems
    context.close()

    with live_app.app_context():
        expert = db.session.get(User, data["expert"]["id"])
        held = member_keys.held_certificate(expert)
        assert held is not None and held.sealed_key == ""
        assert signing.signatures_ok(pdf, expected=2)
        statuses = signing.validate_pdf(pdf)
        assert statuses[1].field_name == "member-2" and statuses[1].serial == held.serial
        report = signing.pdfsig_report(pdf, signing.trust_roots_pem())
        assert report.signature_count == 2 and report.all_valid, report.text
        record = operations.current_record(db.session.get(Tender, data["tender_id"]))
        assert record.status == RecordStatus.SIGNED  # two members still to sign


# Runs in the page: the member's entry in IndexedDB, and whether its key exports.
KEY_PROBE = """async (account) => {
  const db = await new Promise((resolve, reject) => {
    const request = indexedDB.open("fairbid-signing-keys", 1);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const entry = await new Promise((resolve) => {
    const request = db.transaction("keys").objectStore("keys").get("account-" + account);
    request.onsuccess = () => resolve(request.result);
  });
  db.close();
  if (!entry) { return { found: false }; }
  let exported = true;
  try { await crypto.subtle.exportKey("pkcs8", entry.privateKey); }
  catch (error) { exported = false; }
  return { found: true, extractable: entry.privateKey.extractable, exported: exported,
           type: entry.privateKey.type };
}"""


def _fresh_code(live_app, who: dict) -> str:
    """The member's next confirmation: the step used by the previous one is forgotten, as
    it would be half a minute later (tests never wait)."""
    with live_app.app_context():
        user = db.session.get(User, who["id"])
        user.totp_last_step = 0
        db.session.commit()
    return pyotp.TOTP(who["secret"]).now()
