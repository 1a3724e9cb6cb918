"""In a real browser: staff publish the candidates; a bidder objects with an attachment;
staff uphold the objection and send the tender back to evaluation; the panel finalises
again (its rows, then the records area's `request_record` and its signing job) and the
staff page lists the new signed record next to the old one, marked superseded."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pyotp
from playwright.sync_api import expect

import evaluation
from app.accounts import security
from app.accounts.models import Role, User
from app.bids.models import Bid
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow
from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.records.models import EvaluationRecord, RecordStatus
from app.results.models import Objection
from app.tenders.models import Lot, Tender, TenderStatus
from app.tenders.template_ops import sync_builtin_templates
from tests.conftest import run_queued_jobs
from tests.factories import PASSWORD, valid_uscc
from tests.factories.results import scoring_document, store_record

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _world(live_app) -> dict:
    with live_app.app_context():
        goods = next(t for t in sync_builtin_templates() if t.key == "goods")
        centre = TradingCentre(code="OBJ", name="Objection Centre", level="city")
        db.session.add(centre)
        db.session.flush()
        secret = pyotp.random_base32()
        staff = User(
            email="staff@obj.example",
            full_name="Staff Member",
            role=Role.STAFF,
            centre_id=centre.id,
            password_hash=security.hash_password(PASSWORD),
            email_confirmed_at=utcnow(),
            totp_secret=secret,
            totp_enabled_at=utcnow(),
        )
        db.session.add(staff)
        db.session.flush()
        now = utcnow()
        tender = Tender(
            centre_id=centre.id,
            template_version_id=goods.latest.id,
            reference="OBJ-2026-001",
            title="School desks",
            category="goods",
            direction="lowest_wins",
            status=TenderStatus.EVALUATING,
            publication_at=now - timedelta(days=30),
            enquiry_deadline=now - timedelta(days=20),
            submission_deadline=now - timedelta(days=10),
            opening_at=now - timedelta(days=10),
            created_by_id=staff.id,
            published_at=now - timedelta(days=30),
        )
        db.session.add(tender)
        db.session.flush()
        db.session.add(Lot(tender_id=tender.id, number=1, title="Desks"))
        companies, bidders = [], []
        for n in range(4):
            company = Company(
                name=f"Desk Maker {n + 1} Ltd.",
                registration_number=valid_uscc(770001 + n),
                legal_representative="Rep",
                contact_name="Contact",
                contact_phone="+86 571 0000 0000",
                home_centre_id=centre.id,
                status=CompanyStatus.APPROVED,
            )
            db.session.add(company)
            db.session.flush()
            user = User(
                email=f"bidder{n + 1}@obj.example",
                full_name=f"Bidder {n + 1}",
                role=Role.BIDDER,
                company_id=company.id,
                password_hash=security.hash_password(PASSWORD),
                email_confirmed_at=utcnow(),
            )
            db.session.add(user)
            db.session.flush()
            db.session.add(
                Bid(
                    tender_id=tender.id,
                    company_id=company.id,
                    submitted_by_id=user.id,
                    envelope_sha256=hashlib.sha256(company.name.encode()).hexdigest(),
                    size=100,
                    received_at=now - timedelta(days=11),
                    receipt="{}",
                )
            )
            companies.append(company)
            bidders.append(user)
        doc = scoring_document(companies)
        db.session.add(
            Evaluation(
                tender_id=tender.id,
                stage=EvaluationStage.FINALISED,
                round=1,
                chair_id=None,
                finalised_at=now,
                unblinded_at=now,
                scoring_json=evaluation.dumps(doc),
                scoring_sha256=evaluation.input_sha256(doc),
            )
        )
        db.session.flush()
        record = store_record(tender, 1)
        db.session.commit()
        return {
            "tender": tender.id,
            "record": record.id,
            "staff": {"email": staff.email, "secret": secret, "id": staff.id},
            "bidder": bidders[2].email,
        }


def _sign_in(page, server: str, email: str, code: str | None = None) -> None:
    page.goto(server + "/accounts/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    if code is not None:
        page.locator("#code").fill(code)
        page.get_by_role("button", name="Verify").click()
        # The second factor accepted (a code a step too old would leave this form showing).
        expect(page.locator("#code")).to_have_count(0)
    expect(page.locator("#email")).to_have_count(0)


def test_bidder_objects_staff_uphold_and_the_tender_is_evaluated_again(
    live_app, live_server, browser
):
    world = _world(live_app)
    tender_id = world["tender"]
    totp = pyotp.TOTP(world["staff"]["secret"])

    staff_context = browser.new_context(locale="en-GB")
    staff = staff_context.new_page()
    staff.set_default_timeout(15_000)
    _sign_in(staff, live_server, world["staff"]["email"], totp.now())
    staff.goto(f"{live_server}/results/tenders/{tender_id}/manage")
    staff.get_by_role("button", name="Publish the candidates").click()
    expect(staff.locator("#notices table.candidates tbody tr")).to_have_count(3)
    expect(staff.locator("#notices")).to_contain_text("Desk Maker 2 Ltd.")

    # The bidder (third ranked) objects with an attachment.
    bidder_context = browser.new_context(locale="en-GB")
    bidder = bidder_context.new_page()
    bidder.set_default_timeout(15_000)
    _sign_in(bidder, live_server, world["bidder"])
    bidder.goto(f"{live_server}/tenders/{tender_id}")
    expect(bidder.locator("#result-notice")).to_contain_text("Bidders may object until")
    bidder.goto(f"{live_server}/results/tenders/{tender_id}/bidder")
    bidder.locator("#text").fill("Expert scores for our design ignore the drawings we sent.")
    bidder.locator("#attachments").set_input_files(
        {"name": "drawings.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    bidder.get_by_role("button", name="File the objection").click()
    expect(bidder.locator("#your-objections")).to_contain_text("open: awaiting the decision")
    expect(bidder.locator("#file-objection")).to_have_count(0)
    with live_app.app_context():
        objection = db.session.query(Objection).filter_by(tender_id=tender_id).one()
        objection_id = objection.id
        assert objection.attachments[0]["sha256"] == hashlib.sha256(PDF).hexdigest()

    # Staff see it with its attachment, uphold it and send the tender back to scoring.
    staff.reload()
    card = staff.locator(f"#objection-{objection_id}")
    expect(card.locator(".attachments a")).to_have_text("drawings.pdf")
    card.locator(f"#outcome-{objection_id}-upheld").check()
    card.locator(f"#reason-{objection_id}").fill("The drawings were part of the bid.")
    card.get_by_role("button", name="Record the decision").click()
    expect(staff.locator(f"#objection-{objection_id} .objection-status")).to_have_text("upheld")
    staff.locator("#reopen #stage").select_option("scoring")
    staff.locator("#reopen #reason").fill("Objection upheld: the panel scores the designs again.")
    staff.get_by_role("button", name="Send the tender back to evaluation").click()
    expect(staff.locator(f"#record-{world['record']}")).to_have_class("record-superseded")
    expect(staff.locator("#evaluation-records")).to_contain_text("round 2")

    bidder.reload()
    expect(bidder.locator("#your-objections")).to_contain_text("upheld")

    # The panel finalises round 2; the records area makes and signs the new record (in a
    # thread of its own: pyHanko runs asyncio, and Playwright's loop owns this one).
    with ThreadPoolExecutor(1) as pool:
        new_record_id = pool.submit(_finalise_again, live_app, tender_id, world).result()
    with live_app.app_context():
        assert db.session.get(EvaluationRecord, new_record_id).status == RecordStatus.SIGNED
        assert db.session.get(EvaluationRecord, world["record"]).status == RecordStatus.SUPERSEDED

    staff.reload()
    expect(staff.locator(f"#record-{new_record_id}")).to_have_class("record-signed")
    expect(staff.locator(f"#record-{world['record']}")).to_have_class("record-superseded")
    expect(staff.locator(f"#record-{world['record']}")).to_contain_text("Objection upheld")
    staff.get_by_role("button", name="Publish the candidates").click()
    expect(staff.locator("#notices .notice-history.superseded")).to_have_count(1)
    staff.goto(f"{live_server}/results/tenders/{tender_id}")
    expect(staff.locator("#earlier-notices")).to_contain_text("superseded on")
    staff_context.close()
    bidder_context.close()


def _finalise_again(live_app, tender_id: int, world: dict) -> int:
    from app.records.operations import request_record

    with live_app.test_request_context():
        row = db.session.get(Evaluation, tender_id)
        assert row.round == 2 and row.stage == EvaluationStage.SCORING
        row.stage = EvaluationStage.FINALISED
        row.finalised_at = utcnow()
        staff = db.session.get(User, world["staff"]["id"])
        record = request_record(staff, db.session.get(Tender, tender_id))
        db.session.commit()  # the record job runs after the commit (inline, or queued:)
        run_queued_jobs()
        return record.id
