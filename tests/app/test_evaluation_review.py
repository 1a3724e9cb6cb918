"""The review stage of the evaluation: parts kept at opening, the anonymity scan, automatic
compliance and commercial scores, the chair's actions, abnormally low prices."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.companies.models import CompanyAlias
from app.core.errors import Conflict, OperationError
from app.evaluations import operations, queries, scoring_file
from app.evaluations.models import EvaluationStage, LowPriceStatus
from app.extensions import db
from app.opening.models import AnonymityDecision, EvaluatedBid
from app.permissions import PermissionDenied
from app.tenders.documents import blob_store
from app.tenders.models import Notification, TenderStatus
from tests.factories.evaluations import opened_tender, seat_panel, text_pdf
from tests.factories.opening import staff_of

XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Secret Maker</dc:creator></x:xmpmeta>'


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def by_bid(opened):
    return {e.bid_id: e for e in queries.evaluated_bids(opened.tender)}


def started(make_tender, make_user, prices, **kw):
    opened = opened_tender(make_tender, make_user, prices, **kw)
    experts = seat_panel(make_user, opened.tender, 3)
    operations.start_evaluation(staff_of(opened.tender), opened.tender)
    db.session.commit()
    return opened, experts


# --- parts kept at opening ------------------------------------------------------------------


def test_opening_keeps_stripped_technical_parts_and_scans_them(make_tender, make_user):
    # The second bidder names itself in its proposal; the third is not a PDF.
    def technicals(names):
        return [
            text_pdf(
                ["Our approach", "Delivery plan"],
                author="Alice Author",
                xmp=XMP,
                comment_by="Carol Commenter",
            ),
            text_pdf(["Proposal of", names[1] + " with care"]),
            b"plain text proposal",
        ]

    opened = opened_tender(
        make_tender,
        make_user,
        ["500000.00", "520000.00", "510000.00"],
        technicals=_Lazy(technicals),
    )
    rows = by_bid(opened)
    assert len(rows) == 3
    first, second, third = (rows[b.id] for b in opened.bids)
    # Codes like T-7QK from the unambiguous alphabet, unique; no order with submission.
    codes = [r.code for r in rows.values()]
    assert all(re.fullmatch(r"T-[2-9A-HJ-NP-Z]{3}", c) for c in codes)
    assert len(set(codes)) == 3
    # Metadata stripped, pages kept.
    with blob_store().open(first.technical_sha256) as stream:
        data = stream.read()
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata is None or "/Author" not in reader.metadata
    assert "/Metadata" not in reader.trailer["/Root"]
    assert b"Alice Author" not in data and b"Secret Maker" not in data
    assert b"Carol Commenter" not in data and b"check this" in data
    assert "Delivery plan" in reader.pages[0].extract_text()
    assert first.technical_type == "application/pdf"
    assert first.anonymity_decision == AnonymityDecision.CLEAN and first.anonymity_hits == []
    # The name in the second proposal is an anonymity question.
    assert second.anonymity_decision == AnonymityDecision.PENDING
    assert [h["kind"] for h in second.anonymity_hits] == ["name"]
    assert opened.bidders[1].company.name in second.anonymity_hits[0]["excerpt"]
    # A non-PDF technical part is kept as is and flagged.
    assert third.anonymity_decision == AnonymityDecision.PENDING
    assert third.anonymity_hits[0]["kind"] == "not_pdf"
    with blob_store().open(third.technical_sha256) as stream:
        assert stream.read() == b"plain text proposal"
    # Qualification parts are kept.
    assert [q["name"] for q in first.qualification] == [f"qualification-{n}" for n in range(1, 6)]
    # No temporary file left behind.
    assert list((blob_store().root / "tmp").glob("opening-*")) == []


class _Lazy:
    """Technical parts computed from the bidders (whose names exist only once made)."""

    def __init__(self, build):
        self.build = build
        self.cache = None

    def __getitem__(self, index):
        return self._parts()[index]

    def _parts(self):
        if self.cache is None:
            from app.companies.models import Company

            # Called while sealing: the three bidders' companies are the newest.
            names = [
                c.name
                for c in db.session.scalars(select(Company).order_by(Company.id.desc()).limit(3))
            ][::-1]
            self.cache = self.build(names)
        return self.cache


def test_alias_and_credit_code_are_found_and_masked(make_company):
    from app.opening import parts

    company = make_company(name="Bright Star Engineering Co., Ltd.")
    db.session.add(CompanyAlias(company_id=company.id, alias="Bright Star Works"))
    db.session.commit()
    hits = parts.scan_pages(
        ["Made by BRIGHT  STAR", "works, code " + company.registration_number],
        parts.identities_of(company),
    )
    kinds = sorted({h["kind"] for h in hits})
    assert kinds == ["alias", "registration_number"]  # "Bright Star" alone is not the name
    masked = parts.masked_excerpt(next(h for h in hits if h["kind"] == "registration_number"))
    assert company.registration_number not in masked and "[name removed]" in masked
    assert parts.scan_pages(["An ordinary proposal"], parts.identities_of(company)) == []


def test_unreadable_pdf_does_not_fail_the_opening(make_tender, make_user):
    opened = opened_tender(
        make_tender,
        make_user,
        ["500000.00", "520000.00", "510000.00"],
        technicals=[b"%PDF-1.7\nthis is not really a pdf", text_pdf(["x"]), text_pdf(["y"])],
    )
    assert opened.tender.status == TenderStatus.OPENED
    flagged = by_bid(opened)[opened.bids[0].id]
    assert flagged.anonymity_decision == AnonymityDecision.PENDING
    assert flagged.anonymity_hits[0]["kind"] in ("unreadable_pdf", "no_text")


def test_codes_are_random_unique_and_unordered():
    from app.opening import parts

    taken: set[str] = set()
    drawn = [parts.new_code(taken) for _ in range(300)]
    assert len(set(drawn)) == 300
    assert all(re.fullmatch(r"T-[2-9A-HJ-NP-Z]{3}", c) for c in drawn)
    assert drawn != sorted(drawn)  # not a counter: order says nothing about submission
    assert len({c[2] for c in drawn}) > 10


def test_a_pdf_too_large_to_rewrite_is_kept_and_flagged(app, make_tender, make_user):
    app.config["EVALUATION_PDF_REWRITE_MAX"] = 100
    try:
        opened = opened_tender(
            make_tender,
            make_user,
            ["500000.00", "520000.00", "510000.00"],
            technicals=[text_pdf(["big"], author="Big Author")] * 3,
        )
    finally:
        app.config.pop("EVALUATION_PDF_REWRITE_MAX")
    row = by_bid(opened)[opened.bids[0].id]
    assert row.anonymity_decision == AnonymityDecision.PENDING
    assert row.anonymity_hits[0]["kind"] == "too_large"


# --- starting -------------------------------------------------------------------------------


def test_start_needs_a_complete_panel_and_staff(make_tender, make_user):
    from app.accounts.models import Role

    opened = opened_tender(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    tender = opened.tender
    with pytest.raises(Conflict) as refused:
        operations.start_evaluation(staff_of(tender), tender)
    assert refused.value.code == "no_panel"
    db.session.rollback()
    experts = seat_panel(make_user, tender, 3, declared=False)
    with pytest.raises(Conflict) as refused:
        operations.start_evaluation(staff_of(tender), tender)
    assert refused.value.code == "panel_incomplete"
    db.session.rollback()
    with pytest.raises(PermissionDenied):
        operations.start_evaluation(experts[0], tender)
    other_staff = make_user(Role.STAFF)  # another centre
    with pytest.raises(PermissionDenied):
        operations.start_evaluation(other_staff, tender)
    db.session.rollback()
    assert queries.evaluation_of(tender) is None
    assert db.session.get(type(tender), tender.id).status == TenderStatus.OPENED


def test_start_computes_once_and_audits(make_tender, make_user):
    opened, experts = started(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    tender = opened.tender
    current = queries.evaluation_of(tender)
    assert tender.status == TenderStatus.EVALUATING
    assert current.stage == EvaluationStage.REVIEW and current.chair_id == experts[0].id
    assert queries.is_chair(experts[0], tender) and not queries.is_chair(experts[1], tender)
    scored = json.loads(current.scoring_json)
    assert [b["id"] for b in scored["bids"]] == sorted(
        u.company.registration_number for u in opened.bidders
    )
    assert scored["bids"][0]["documents"][:5] == [
        "business_licence",
        "financial_statement",
        "tax_social_security",
        "no_violation_declaration",
        "power_of_attorney",
    ]
    assert scored["bids"][0]["bid_bond"] == "10000.00"
    assert scored["bids"][0]["compliance"] == {
        "signed_and_sealed": True,
        "technical_part_anonymous": True,
    }
    assert "evaluation.started" in actions() and verify_chain() is None
    with pytest.raises(Conflict):
        operations.start_evaluation(staff_of(tender), tender)


# --- the chair's actions --------------------------------------------------------------------


def test_overrule_reruns_and_audits_and_wrong_roles_are_refused(make_tender, make_user):
    opened, experts = started(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    tender, chair = opened.tender, experts[0]
    bid = opened.bids[0]
    operations.record_check(chair, tender, bid.id, "essential_specifications_met", True, "Met.")
    db.session.commit()
    before = queries.evaluation_of(tender).scoring_sha256
    for outsider in (experts[1], staff_of(tender), opened.bidders[0]):
        with pytest.raises(PermissionDenied):
            operations.overrule(outsider, tender, bid.id, False, "no")
    with pytest.raises(OperationError) as refused:
        operations.overrule(chair, tender, bid.id, False, "   ")
    assert refused.value.code == "no_reason"
    db.session.rollback()
    assert by_bid(opened)[bid.id].override_compliant is None
    operations.overrule(chair, tender, bid.id, False, "The signature page is a scan of a copy.")
    db.session.commit()
    current = queries.evaluation_of(tender)
    assert current.scoring_sha256 != before
    scored = json.loads(current.scoring_json)
    mine = next(b for b in scored["result"]["bids"] if b["id"] == bidder_of(opened, 0))
    assert mine["compliant"] is False
    assert mine["reasons"][-1]["code"] == "panel_overruled_non_compliant"
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "evaluation.compliance_overruled")
    )
    data = json.loads(event.data)
    assert data["reason"] == "The signature page is a scan of a copy."
    assert data["input_sha256"] == current.scoring_sha256


def bidder_of(opened, index):
    return opened.bidders[index].company.registration_number


def test_confirm_is_refused_while_questions_are_open(make_tender, make_user):
    opened, experts = started(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    tender, chair = opened.tender, experts[0]
    with pytest.raises(Conflict) as refused:
        operations.confirm_review(chair, tender)
    assert refused.value.code == "checks_open"
    db.session.rollback()
    for bid in opened.bids[:2]:
        operations.record_check(chair, tender, bid.id, "essential_specifications_met", True, "Met.")
    db.session.commit()
    with pytest.raises(Conflict):
        operations.confirm_review(chair, tender)
    db.session.rollback()
    with pytest.raises(OperationError) as refused:
        operations.record_check(chair, tender, opened.bids[2].id, "signed_and_sealed", True, "ok")
    assert refused.value.code == "bad_check"
    db.session.rollback()
    operations.record_check(
        chair, tender, opened.bids[2].id, "essential_specifications_met", False, "Item 3 ★ unmet."
    )
    db.session.commit()
    current = operations.confirm_review(chair, tender)
    db.session.commit()
    assert current.stage == EvaluationStage.SCORING
    scored = json.loads(current.scoring_json)
    third = next(b for b in scored["result"]["bids"] if b["id"] == bidder_of(opened, 2))
    assert third["compliant"] is False
    assert third["reasons"][0]["params"]["reason"] == "Item 3 ★ unmet."
    with pytest.raises(Conflict):
        operations.overrule(chair, tender, opened.bids[0].id, True, "late")


def test_anonymity_question_blocks_confirmation_until_decided(make_tender, make_user):
    opened, experts = started(
        make_tender,
        make_user,
        ["500000.00", "520000.00", "510000.00"],
        technicals=[b"not a pdf", text_pdf(["a"]), text_pdf(["b"])],
    )
    tender, chair = opened.tender, experts[0]
    for bid in opened.bids:
        operations.record_check(chair, tender, bid.id, "essential_specifications_met", True, "Met.")
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        operations.confirm_review(chair, tender)
    assert refused.value.code == "anonymity_open"
    db.session.rollback()
    code = by_bid(opened)[opened.bids[0].id].code
    operations.decide_anonymity(chair, tender, code, False, "A Word file with the logo.")
    db.session.commit()
    with pytest.raises(Conflict):
        operations.decide_anonymity(chair, tender, code, True, "again")
    db.session.rollback()
    scored = queries.review_result(tender)
    first = next(b for b in scored["result"]["bids"] if b["id"] == bidder_of(opened, 0))
    assert first["compliant"] is False
    operations.confirm_review(chair, tender)
    db.session.commit()
    assert "evaluation.anonymity_decided" in actions()


# --- abnormally low -------------------------------------------------------------------------


def low_tender(make_tender, make_user):
    # 200000 is more than 40 % below the mean of the others and 30 % below the next.
    opened, experts = started(
        make_tender, make_user, ["500000.00", "200000.00", "510000.00", "520000.00"]
    )
    for bid in opened.bids:
        operations.record_check(
            experts[0], opened.tender, bid.id, "essential_specifications_met", True, "Met."
        )
    db.session.commit()
    return opened, experts


def test_abnormally_low_justification_flow(make_tender, make_user, outbox):
    opened, experts = low_tender(make_tender, make_user)
    tender, chair, low = opened.tender, experts[0], opened.bids[1]
    flags = queries.low_price_flags(scoring_file.provisional(tender))
    assert list(flags) == [bidder_of(opened, 1)]
    with pytest.raises(Conflict) as refused:
        operations.confirm_review(chair, tender)
    assert refused.value.code == "low_price_open"
    db.session.rollback()
    with pytest.raises(Conflict):
        operations.request_justification(chair, tender, opened.bids[0].id)
    db.session.rollback()
    operations.request_justification(chair, tender, low.id)
    db.session.commit()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.REQUESTED
    note = db.session.scalar(
        select(Notification).where(Notification.user_id == opened.bidders[1].id)
    )
    assert note is not None and tender.reference in note.title
    mail = outbox.messages()
    assert [m.to for m in mail] == [[opened.bidders[1].email]]
    assert "abnormally low" in mail[0].body
    # Only the bidder concerned may answer.
    with pytest.raises(OperationError):
        operations.submit_justification(opened.bidders[0], tender, "we are cheap")
    db.session.rollback()
    pdf = operations.Upload("costs.pdf", "application/pdf", io.BytesIO(text_pdf(["Costs"])))
    operations.submit_justification(opened.bidders[1], tender, "Our own factory.", [pdf])
    db.session.commit()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.SUBMITTED
    assert row.low_price_attachments[0]["content_type"] == "application/pdf"
    assert blob_store().exists(row.low_price_attachments[0]["sha256"])
    operations.decide_justification(
        chair, tender, low.id, False, "The cost breakdown omits labour."
    )
    db.session.commit()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.REJECTED and row.override_compliant is False
    operations.confirm_review(chair, tender)
    db.session.commit()
    assert {"evaluation.justification_requested", "evaluation.justification_submitted"} <= set(
        actions()
    )


def test_late_justification_is_refused_and_nothing_stored(make_tender, make_user):
    opened, experts = low_tender(make_tender, make_user)
    tender, chair, low = opened.tender, experts[0], opened.bids[1]
    operations.request_justification(chair, tender, low.id, days=1)
    db.session.commit()
    row = by_bid(opened)[low.id]
    row.low_price_due_at = row.low_price_due_at - timedelta(days=2)
    db.session.commit()
    content = text_pdf(["late costs " + tender.reference])
    upload = operations.Upload("late.pdf", "application/pdf", io.BytesIO(content))
    with pytest.raises(Conflict) as refused:
        operations.submit_justification(opened.bidders[1], tender, "Too late.", [upload])
    assert refused.value.code == "late"
    db.session.rollback()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.REQUESTED
    assert row.low_price_justification == "" and row.low_price_attachments == []
    import hashlib

    assert not blob_store().exists(hashlib.sha256(content).hexdigest())
    # A refused file type stores nothing either.
    row.low_price_due_at = row.low_price_due_at + timedelta(days=5)
    db.session.commit()
    bad = operations.Upload("x.exe", "application/octet-stream", io.BytesIO(b"MZ\x90\x00binary"))
    with pytest.raises(OperationError):
        operations.submit_justification(opened.bidders[1], tender, "ok", [bad])
    db.session.rollback()
    assert by_bid(opened)[low.id].low_price_status == LowPriceStatus.REQUESTED
    assert (
        db.session.scalar(
            select(EvaluatedBid.low_price_justification).where(EvaluatedBid.bid_id == low.id)
        )
        == ""
    )


# --- pages and API --------------------------------------------------------------------------


def signed_in(app, user):
    from tests.conftest import AuthActions

    client = app.test_client()
    AuthActions(client).login(user)
    return client


def token_headers(user) -> dict:
    from app.accounts import operations as account_ops

    token = account_ops.create_api_token(user, "test")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_review_through_the_web(app, make_tender, make_user):
    opened = opened_tender(
        make_tender,
        make_user,
        ["500000.00", "520000.00", "510000.00"],
        technicals=_Lazy(
            lambda names: [text_pdf(["x"]), text_pdf([names[1] + " proposal"]), text_pdf(["y"])]
        ),
    )
    tender = opened.tender
    # The third bidder's bond was never paid.
    from app.tenders.models import BondRecord, TenderRegistration

    registration = db.session.scalar(
        select(TenderRegistration).where(
            TenderRegistration.tender_id == tender.id,
            TenderRegistration.company_id == opened.bidders[2].company_id,
        )
    )
    for bond in db.session.scalars(
        select(BondRecord).where(BondRecord.registration_id == registration.id)
    ):
        db.session.delete(bond)
    db.session.commit()
    experts = seat_panel(make_user, tender, 3)
    staff = signed_in(app, staff_of(tender))
    page = staff.get(f"/evaluations/tenders/{tender.id}").get_data(as_text=True)
    assert "Start the evaluation" in page
    response = staff.post(f"/evaluations/tenders/{tender.id}/start", data={"chair": experts[1].id})
    assert response.status_code == 302
    db.session.expire_all()
    assert queries.evaluation_of(tender).chair_id == experts[1].id
    chair = signed_in(app, experts[1])
    page = chair.get(f"/evaluations/tenders/{tender.id}").get_data(as_text=True)
    # Every bid by name with its reasons; never a technical code on this page.
    for bidder in opened.bidders:
        assert bidder.company.name in page
    assert "No bid bond was recorded; CN¥10,000.00 is required." in page
    assert "Essential (★) specifications met" in page and "provisional" in page
    for row in queries.evaluated_bids(tender):
        assert row.code not in page
    # The anonymity page: codes and masked hits only.
    anonymity = chair.get(f"/evaluations/tenders/{tender.id}/anonymity").get_data(as_text=True)
    flagged = by_bid(opened)[opened.bids[1].id]
    assert flagged.code in anonymity and "[name removed]" in anonymity and "█" not in anonymity
    for bidder in opened.bidders:
        assert bidder.company.name not in anonymity
        assert bidder.company.registration_number not in anonymity
    for price in ("500000", "520000", "510000", "500,000", "520,000", "510,000"):
        assert price not in anonymity
    # Overrule through the form: audited, recomputed.
    before = queries.evaluation_of(tender).scoring_sha256
    bid = opened.bids[0]
    response = chair.post(
        f"/evaluations/tenders/{tender.id}/bids/{bid.id}/overrule",
        data={"decision": "non_compliant", "reason": "Forged licence."},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert queries.evaluation_of(tender).scoring_sha256 != before
    page = chair.get(f"/evaluations/tenders/{tender.id}").get_data(as_text=True)
    assert "found the bid non-compliant: Forged licence." in page
    # A member who is not the chair: refused, nothing changes.
    member = signed_in(app, experts[0])
    response = member.post(
        f"/evaluations/tenders/{tender.id}/bids/{bid.id}/overrule",
        data={"decision": "compliant", "reason": "I disagree."},
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert by_bid(opened)[bid.id].override_compliant is False
    # The anonymity question decided on its page.
    response = chair.post(
        f"/evaluations/tenders/{tender.id}/anonymity",
        data={"code": flagged.code, "decision": "accept", "reason": "Quoted tender text."},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert by_bid(opened)[opened.bids[1].id].anonymity_decision == AnonymityDecision.ACCEPTED
    # A bidder sees none of it.
    bidder = signed_in(app, opened.bidders[0])
    assert bidder.get(f"/evaluations/tenders/{tender.id}").status_code == 403
    assert bidder.get(f"/evaluations/tenders/{tender.id}/justification").status_code == 404


def test_the_review_through_the_api(app, make_tender, make_user):
    from app.accounts.models import Role

    opened, experts = low_tender(make_tender, make_user)
    tender, low = opened.tender, opened.bids[1]
    chair = token_headers(experts[0])
    client = app.test_client()
    data = client.get(f"/api/v1/tenders/{tender.id}/evaluation/review", headers=chair).json
    assert [b["bid_id"] for b in data["bids"]] == sorted(b.id for b in opened.bids)
    flagged = next(b for b in data["bids"] if b["bid_id"] == low.id)
    assert flagged["low_price"]["flags"] and "code" not in json.dumps(flagged["low_price"])
    assert data["price"]["benchmark"] == "200000.00"
    for row in queries.evaluated_bids(tender):
        assert row.code not in json.dumps(data)
    # Wrong roles.
    bidder = token_headers(opened.bidders[0])
    assert (
        client.get(f"/api/v1/tenders/{tender.id}/evaluation/review", headers=bidder).status_code
        == 403
    )
    other_staff = token_headers(make_user(Role.STAFF))
    assert (
        client.get(
            f"/api/v1/tenders/{tender.id}/evaluation/review", headers=other_staff
        ).status_code
        == 403
    )
    member = token_headers(experts[1])
    response = client.post(
        f"/api/v1/tenders/{tender.id}/evaluation/bids/{low.id}/justification-request",
        json={"days": 2},
        headers=member,
    )
    assert response.status_code == 403
    # The chair asks; the bidder answers with a file through the API; the chair accepts.
    response = client.post(
        f"/api/v1/tenders/{tender.id}/evaluation/bids/{low.id}/justification-request",
        json={"days": 2},
        headers=chair,
    )
    assert response.status_code == 200, response.json
    low_bidder = token_headers(opened.bidders[1])
    request_ = client.get(
        f"/api/v1/tenders/{tender.id}/evaluation/justification", headers=low_bidder
    )
    assert request_.json["status"] == "requested"
    response = client.post(
        f"/api/v1/tenders/{tender.id}/evaluation/justification",
        data={"text": "Own quarry.", "files": (io.BytesIO(b"cost,1\n"), "costs.csv", "text/csv")},
        headers=low_bidder,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.json
    assert response.json["attachments"][0]["content_type"] == "text/csv"
    sha = response.json["attachments"][0]["sha256"]
    file_url = f"/evaluations/tenders/{tender.id}/bids/{low.id}/justification/file?sha={sha}"
    download = signed_in(app, experts[2]).get(file_url)
    body, disposition = download.data, download.headers["Content-Disposition"]
    download.close()
    assert download.status_code == 200 and body == b"cost,1\n"
    assert "attachment" in disposition
    assert signed_in(app, opened.bidders[0]).get(file_url).status_code == 403
    response = client.post(
        f"/api/v1/tenders/{tender.id}/evaluation/bids/{low.id}/justification-decision",
        json={"accepted": True, "reason": "Quarry owned: credible."},
        headers=chair,
    )
    assert response.status_code == 200
    response = client.post(f"/api/v1/tenders/{tender.id}/evaluation/confirm", headers=chair)
    assert response.status_code == 200, response.json
    assert response.json["evaluation"]["stage"] == "scoring"
    response = client.post(f"/api/v1/tenders/{tender.id}/evaluation/confirm", headers=chair)
    assert response.status_code == 409


def test_confirm_through_the_api_is_refused_with_open_questions(app, make_tender, make_user):
    opened, experts = started(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    client = app.test_client()
    response = client.post(
        f"/api/v1/tenders/{opened.tender.id}/evaluation/confirm",
        headers=token_headers(experts[0]),
    )
    assert response.status_code == 409 and response.json["error"] == "checks_open"
    db.session.expire_all()
    assert queries.evaluation_of(opened.tender).stage == EvaluationStage.REVIEW


def test_late_justification_through_the_web_is_refused(app, make_tender, make_user):
    opened, experts = low_tender(make_tender, make_user)
    tender, low = opened.tender, opened.bids[1]
    operations.request_justification(experts[0], tender, low.id, days=1)
    db.session.commit()
    bidder = signed_in(app, opened.bidders[1])
    page = bidder.get(f"/evaluations/tenders/{tender.id}/justification").get_data(as_text=True)
    assert "Submit the justification" in page
    row = by_bid(opened)[low.id]
    row.low_price_due_at = row.low_price_due_at - timedelta(days=3)
    db.session.commit()
    response = bidder.post(
        f"/evaluations/tenders/{tender.id}/justification",
        data={"text": "Late answer."},
        follow_redirects=True,
    )
    assert "nothing was stored" in response.get_data(as_text=True)
    db.session.expire_all()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.REQUESTED and row.low_price_justification == ""
    assert "evaluation.justification_submitted" not in actions()


def test_unanswered_justification_is_decided_only_after_the_window(make_tender, make_user):
    opened, experts = low_tender(make_tender, make_user)
    tender, chair, low = opened.tender, experts[0], opened.bids[1]
    operations.request_justification(chair, tender, low.id, days=2)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        operations.decide_justification(chair, tender, low.id, False, "No answer.")
    assert refused.value.code == "not_submitted"
    db.session.rollback()
    row = by_bid(opened)[low.id]
    row.low_price_due_at = row.low_price_due_at - timedelta(days=3)
    db.session.commit()
    operations.decide_justification(chair, tender, low.id, False, "No answer within the window.")
    db.session.commit()
    row = by_bid(opened)[low.id]
    assert row.low_price_status == LowPriceStatus.REJECTED
    scored = queries.review_result(tender)
    mine = next(b for b in scored["result"]["bids"] if b["id"] == bidder_of(opened, 1))
    assert mine["compliant"] is False
    # The overrule can be withdrawn by the chair (with a reason), and the bid is back.
    operations.overrule(chair, tender, low.id, None, "Decided again after a hearing.")
    db.session.commit()
    assert by_bid(opened)[low.id].override_compliant is None


def test_start_creates_missing_evaluated_bids(make_tender, make_user):
    """A tender opened before technical parts were kept still gets its random codes."""
    opened = opened_tender(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    for row in queries.evaluated_bids(opened.tender):
        db.session.delete(row)
    db.session.commit()
    seat_panel(make_user, opened.tender, 3)
    operations.start_evaluation(staff_of(opened.tender), opened.tender)
    db.session.commit()
    rows = queries.evaluated_bids(opened.tender)
    assert sorted(r.bid_id for r in rows) == sorted(b.id for b in opened.bids)
    assert len({r.code for r in rows}) == 3
    assert all(r.technical_sha256 is None for r in rows)
