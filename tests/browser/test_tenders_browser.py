"""In a real browser: staff create a tender from the goods template and publish it; a
bidder finds it on the portal in Korean, registers and downloads the documents, whose
SHA-256 matches the one the portal shows."""

from __future__ import annotations

import hashlib
import time

import pyotp
from playwright.sync_api import expect

from app.accounts import security
from app.accounts.models import Role, User
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow
from app.custody.operations import create_custodian_key
from app.extensions import db
from app.tenders.template_ops import sync_builtin_templates
from tests.factories import CUSTODIAN_PASSPHRASE, PASSWORD, valid_uscc


def _people(live_app) -> dict:
    with live_app.app_context():
        sync_builtin_templates()
        centre = TradingCentre(code="TBR", name="Tender Browser Centre", level="city")
        db.session.add(centre)
        db.session.flush()
        company = Company(
            name="Korean Desk Makers Ltd.",
            registration_number=valid_uscc(660001),
            legal_representative="Kim",
            contact_name="Park",
            contact_phone="+82 2 0000 0000",
            home_centre_id=centre.id,
            status=CompanyStatus.APPROVED,
        )
        db.session.add(company)
        db.session.flush()
        people = {}
        for key, role, extra in [
            ("staff", Role.STAFF, {"centre_id": centre.id}),
            ("custodian1", Role.CUSTODIAN, {"centre_id": centre.id}),
            ("custodian2", Role.CUSTODIAN, {"centre_id": centre.id}),
            ("bidder", Role.BIDDER, {"company_id": company.id}),
        ]:
            secret = pyotp.random_base32() if role != Role.BIDDER else None
            user = User(
                email=f"{key}@tbr.example",
                full_name=key.title(),
                role=role,
                password_hash=security.hash_password(PASSWORD),
                email_confirmed_at=utcnow(),
                totp_secret=secret,
                totp_enabled_at=utcnow() if secret else None,
                **extra,
            )
            db.session.add(user)
            db.session.flush()
            if role == Role.CUSTODIAN:  # publication needs every custodian's own key
                create_custodian_key(user, CUSTODIAN_PASSPHRASE)
            people[key] = {"email": user.email, "id": user.id, "secret": secret}
        db.session.commit()
        return people


def test_staff_publish_and_a_bidder_registers_and_downloads_in_korean(
    live_app, live_server, browser
):
    people = _people(live_app)
    staff = people["staff"]
    totp = pyotp.TOTP(staff["secret"])

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(staff["email"])
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Sign in with the previous time step's code, so the current one is still unused
    # when publication asks for it again.
    page.locator("#code").fill(totp.at(time.time() - 30))
    page.get_by_role("button", name="Verify").click()

    page.goto(live_server + "/centre/tenders/new")
    page.locator("tr", has=page.locator("code", has_text="goods")).get_by_role(
        "link", name="Use this template"
    ).first.click()
    page.locator("#reference").fill("TBR-2026-007")
    page.locator("#title").fill("Classroom furniture for Xihu schools")
    page.locator("#budget").fill("800000.00")
    page.locator("#bid_bond_amount").fill("8000.00")
    page.locator("#lots-0-title").fill("Desks and chairs")
    page.locator("#lots-0-ceiling_price").fill("790000.00")
    page.locator("#custodian_ids").select_option(
        [str(people["custodian1"]["id"]), str(people["custodian2"]["id"])]
    )
    page.locator("#custodian_threshold").fill("2")
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_contain_text("Classroom furniture")

    page.locator("#publish #code").fill(totp.now())
    page.get_by_role("button", name="Publish the tender").click()
    expect(page.get_by_text("TBR-2026-007").first).to_be_visible()
    expect(page.locator("code.sha256, td code").first).to_be_visible()
    context.close()

    # The bidder, in Korean.
    context = browser.new_context(locale="ko-KR", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/accounts/login")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.locator("#email").fill(people["bidder"]["email"])
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()

    page.goto(live_server + "/tenders/?q=TBR-2026-007")
    page.get_by_role("link", name="Classroom furniture for Xihu schools").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    page.locator(f"form[action$='/bidder/tenders/{_tender_id(live_app)}/register'] button").click()

    rows = page.locator("tr", has=page.locator("code.sha256"))
    expect(rows.first).to_be_visible()
    documents = rows.count()
    assert documents >= 2  # the tender document as HTML and as PDF
    for index in range(documents):
        row = rows.nth(index)
        shown = row.locator("code.sha256").inner_text().strip()
        with page.expect_download() as download_info:
            row.locator("a").first.click()
        path = download_info.value.path()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shown
    context.close()

    with live_app.app_context():
        from sqlalchemy import func, select

        from app.tenders.models import DocumentDownload

        assert db.session.scalar(select(func.count(DocumentDownload.id))) == documents


def _tender_id(live_app) -> int:
    from sqlalchemy import select

    from app.tenders.models import Tender

    with live_app.app_context():
        return db.session.scalar(select(Tender.id).where(Tender.reference == "TBR-2026-007"))
