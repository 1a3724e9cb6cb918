"""Open data: the OCDS release package of a tender (one release per stage, never edited)
and the bulk packages per trading centre and month. Every package is validated offline
against the OCDS 1.1.5 release package schema with the bids extension merged in."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.accounts.models import Role
from app.bids.models import Bid, BidStatus
from app.extensions import db
from app.opening.models import OpeningLine, OpeningStatus
from app.records.models import EvaluationRecord, RecordSignature, SigningCertificate
from app.tenders.models import Addendum, Enquiry, Lot, Tender, TenderDocument
from tests.factories.ocds import (
    add_document,
    assert_valid,
    at,
    candidate,
    evaluate,
    notice,
    open_bids,
    package_validator,
    record,
    schedule,
)

PUBLISHED = at("2026-03-02T02:00:00+00:00")
OPENED = at("2026-04-01T03:00:00+00:00")
RECORDED = at("2026-04-08T06:00:00+00:00")
CANDIDATES = at("2026-04-09T08:00:00+00:00")
AWARDED = at("2026-05-06T08:00:00+00:00")
PRICES = {"a": "880000.00", "b": "925000.50", "c": "798000.00"}
STAGES = ["published", "opened", "candidates", "awarded", "failed", "cancelled", "no_bids"]


@pytest.fixture(scope="module")
def validator():
    return package_validator()


@dataclass
class Story:
    tender: Tender
    companies: dict[str, Any] = field(default_factory=dict)
    notices: dict[str, Any] = field(default_factory=dict)
    chair: Any = None


@pytest.fixture
def story(make_tender, make_company, make_user):
    """A tender told up to `until`: published in March, opened on 1 April (three opened
    envelopes, one revoked, one withdrawn), evaluated (C non-compliant), candidates A then
    B on 9 April, awarded to A on 6 May; or failed / cancelled after the candidates."""

    def tell(until: str, centre=None, reference=None) -> Story:
        tender = make_tender(centre=centre, reference=reference, keyed=False, title="Road salt")
        schedule(tender, PUBLISHED)
        told = Story(tender)
        if until == "published":
            return told
        if until == "no_bids":
            open_bids(tender, [], OPENED, status=OpeningStatus.FAILED)
            return told
        names = {"a": "Alpha Salt Co.", "b": "Beta Minerals Ltd.", "c": "Gamma Trading"}
        for key in ("a", "b", "c", "d", "e"):
            told.companies[key] = make_company(name=names.get(key))
        c = told.companies
        open_bids(
            tender,
            [
                (c["a"], "opened", PRICES["a"]),
                (c["b"], "opened", PRICES["b"]),
                (c["c"], "opened", PRICES["c"]),
                (c["d"], "revoked", None),
                (c["e"], "withdrawn", None),
            ],
            OPENED,
        )
        # A's first bid, withdrawn by the company before the deadline (it bid again).
        db.session.add(
            Bid(
                tender_id=tender.id,
                company_id=c["a"].id,
                submitted_by_id=tender.created_by_id,
                envelope_sha256="ab" * 32,
                size=900,
                received_at=tender.submission_deadline - timedelta(days=2),
                receipt="{}",
                status=BidStatus.WITHDRAWN,
            )
        )
        db.session.commit()
        if until == "opened":
            return told
        if until == "cancelled":
            tender.status = "cancelled"
            tender.cancelled_at = OPENED + timedelta(days=2)
            tender.cancel_reason = "Funding withdrawn"
            db.session.commit()
            return told
        told.chair = make_user(Role.EXPERT, full_name="Professor Secret Panel")
        evaluate(tender, {c["a"]: True, c["b"]: True, c["c"]: False}, chair=told.chair)
        evaluation_record = record(tender, RECORDED)
        told.notices["candidates"] = notice(
            tender,
            "candidates",
            CANDIDATES,
            candidates=[
                candidate(1, c["a"], PRICES["a"], "91.20"),
                candidate(2, c["b"], PRICES["b"], "84.00"),
            ],
            evaluation_record=evaluation_record,
        )
        if until == "candidates":
            return told
        if until == "failed":
            told.notices["failed"] = notice(
                tender, "failed", AWARDED, reason="The only compliant bids exceed the ceiling"
            )
            return told
        told.notices["award"] = notice(
            tender,
            "award",
            AWARDED,
            winner=candidate(1, c["a"], PRICES["a"], "91.20"),
            evaluation_record=evaluation_record,
        )
        return told

    return tell


def package_of(client, tender) -> dict:
    response = client.get(f"/api/v1/ocds/tenders/{tender.id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.json


def suffixes(package: dict) -> list[str]:
    return [r["id"].removeprefix(r["ocid"] + "-") for r in package["releases"]]


@pytest.mark.parametrize("until", STAGES)
def test_every_stage_gives_a_valid_package_with_one_release_per_stage(
    client, validator, story, until
):
    told = story(until)
    package = package_of(client, told.tender)
    assert_valid(validator, package)
    notices = {kind: n.id for kind, n in told.notices.items()}
    expected = {
        "published": ["tender"],
        "no_bids": ["tender", "unsuccessful"],
        "opened": ["tender", "opening"],
        "cancelled": ["tender", "opening", "cancellation"],
        "candidates": ["tender", "opening", f"candidates-{notices.get('candidates')}"],
        "failed": [
            "tender",
            "opening",
            f"candidates-{notices.get('candidates')}",
            f"unsuccessful-{notices.get('failed')}",
        ],
        "awarded": [
            "tender",
            "opening",
            f"candidates-{notices.get('candidates')}",
            f"award-{notices.get('award')}",
        ],
    }[until]
    assert suffixes(package) == expected
    releases = package["releases"]
    ids = [r["id"] for r in releases]
    assert len(set(ids)) == len(ids)
    assert [r["date"] for r in releases] == sorted(r["date"] for r in releases)
    assert {r["ocid"] for r in releases} == {
        f"ocds-fairbid-{told.tender.centre.code}-{told.tender.reference}"
    }
    for release in releases:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", release["date"])
        assert release["initiationType"] == "tender"
        assert release["buyer"]["id"] == f"centre-{told.tender.centre.code}"
        assert release["tender"]["procurementMethod"] == "open"
        assert release["tender"]["value"] == {"amount": 1000000, "currency": "CNY"}
    final = releases[-1]["tender"]["status"]
    assert (
        final
        == {
            "published": "active",
            "opened": "active",
            "candidates": "active",
            "awarded": "complete",
            "failed": "unsuccessful",
            "no_bids": "unsuccessful",
            "cancelled": "cancelled",
        }[until]
    )
    # Stable: the same releases, byte for byte, on the next call.
    assert package_of(client, told.tender)["releases"] == releases
    # Nothing about the panel, ever.
    assert "Professor Secret Panel" not in json.dumps(package, ensure_ascii=False)


def test_releases_are_never_edited_by_later_stages(client, story):
    told = story("candidates")
    before = {r["id"]: r for r in package_of(client, told.tender)["releases"]}
    c = told.companies
    winner = candidate(1, c["a"], PRICES["a"])
    winner["company_id"] = None  # named by its bidder id only
    notice(told.tender, "award", AWARDED, winner=winner)
    db.session.expire_all()
    after = {r["id"]: r for r in package_of(client, told.tender)["releases"]}
    assert len(after) == len(before) + 1
    [award] = [r for r in after.values() if r["id"] not in before]
    statuses = {a["id"]: a["status"] for a in award["awards"]}
    assert statuses == {f"award-{c['a'].id}": "active", f"award-{c['b'].id}": "unsuccessful"}
    for release_id, release in before.items():
        assert after[release_id] == release


def test_no_price_and_no_bid_details_before_the_opening_and_the_award(client, story):
    told = story("opened")
    tender = told.tender
    # Opened but not yet awarded: tenderers and counts, never a price.
    package = package_of(client, tender)
    text = json.dumps(package)
    for price in PRICES.values():
        assert price not in text and str(int(Decimal(price))) not in text
    opening = package["releases"][-1]
    assert opening["tag"] == ["tenderUpdate"]
    assert "details" not in opening["bids"]
    statistics = {s["measure"]: s["value"] for s in opening["bids"]["statistics"]}
    assert statistics == {
        "bids": 5,
        "electronicBids": 5,
        "disqualifiedBids": 1,
        "withdrawnBids": 1,  # the company's own withdrawal before the deadline
        "unopenedBids": 1,  # the envelope the platform could not open
    }
    tenderers = [p for p in opening["parties"] if "tenderer" in p["roles"]]
    assert len(tenderers) == 5
    for party in tenderers:
        company = next(c for c in told.companies.values() if c.name == party["name"])
        assert party["identifier"] == {
            "scheme": "CN-USCC",
            "id": company.registration_number,
            "legalName": company.name,
        }
        assert party["id"] == f"CN-USCC-{company.registration_number}"
    assert opening["tender"]["numberOfTenderers"] == 5
    assert "tenderers" not in package["releases"][0]["tender"]
    assert "bids" not in package["releases"][0]
    assert "awards" not in opening


def test_an_unfinished_opening_shows_nothing_of_the_envelopes(client, story, make_company):
    told = story("published")
    tender = told.tender
    company = make_company(name="Early Bird Co.")
    open_bids(tender, [(company, "opened", "123456.78")], OPENED, status=OpeningStatus.OPENING)
    tender.status = "closed"
    db.session.commit()
    package = package_of(client, tender)
    text = json.dumps(package, ensure_ascii=False)
    assert "123456.78" not in text and "123456" not in text and "Early Bird" not in text
    assert suffixes(package) == ["tender"]


def test_candidates_are_pending_awards_with_their_documents(client, validator, story):
    told = story("candidates")
    package = package_of(client, told.tender)
    release = package["releases"][-1]
    assert release["tag"] == ["award"]
    assert release["date"] == "2026-04-09T08:00:00Z"
    c = told.companies
    awards = {a["id"]: a for a in release["awards"]}
    assert set(awards) == {f"award-{c['a'].id}", f"award-{c['b'].id}"}
    first = awards[f"award-{c['a'].id}"]
    assert first["status"] == "pending"
    assert first["value"] == {"amount": 880000, "currency": "CNY"}
    assert first["suppliers"] == [
        {"id": f"CN-USCC-{c['a'].registration_number}", "name": c["a"].name}
    ]
    assert awards[f"award-{c['b'].id}"]["value"]["amount"] == 925000.5
    types = {d["documentType"] for d in first["documents"]}
    assert types == {"evaluationReports", "awardNotice"}
    for document in first["documents"]:
        assert document["description"].startswith("SHA-256: ")
        assert document["url"].startswith(f"http://localhost/tenders/{told.tender.id}/documents/")
    assert "details" not in release["bids"]  # per-bid details only after the award
    assert release["tender"]["awardPeriod"] == {"startDate": "2026-04-09T08:00:00Z"}


def test_the_award_release_has_the_active_award_and_the_bid_details(client, validator, story):
    told = story("awarded")
    package = package_of(client, told.tender)
    assert package["extensions"] == [
        "https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/"
        "master/extension.json"
    ]
    release = package["releases"][-1]
    assert release["tag"] == ["tenderUpdate", "awardUpdate"]
    assert release["tender"]["status"] == "complete"
    assert release["tender"]["awardPeriod"] == {
        "startDate": "2026-04-09T08:00:00Z",
        "endDate": "2026-05-06T08:00:00Z",
    }
    c = told.companies
    awards = {a["id"]: a for a in release["awards"]}
    winner = awards[f"award-{c['a'].id}"]
    assert winner["status"] == "active" and winner["date"] == "2026-05-06T08:00:00Z"
    assert awards[f"award-{c['b'].id}"]["status"] == "unsuccessful"
    [documents] = [[d["documentType"] for d in winner["documents"]]]
    assert documents == ["evaluationReports", "awardNotice"]
    suppliers = [p for p in release["parties"] if "supplier" in p["roles"]]
    assert [p["name"] for p in suppliers] == [c["a"].name]

    details = {d["tenderers"][0]["name"]: d for d in release["bids"]["details"]}
    assert {name: d["status"] for name, d in details.items()} == {
        c["a"].name: "valid",
        c["b"].name: "valid",
        c["c"].name: "disqualified",  # the evaluation found it non-compliant
        c["d"].name: "disqualified",  # revoked at the opening
        c["e"].name: "withdrawn",
    }
    assert details[c["a"].name]["value"] == {"amount": 880000, "currency": "CNY"}
    assert details[c["c"].name]["value"]["amount"] == 798000
    assert "value" not in details[c["d"].name]
    assert winner["relatedBids"] == [details[c["a"].name]["id"]]
    statistics = {s["measure"]: s for s in release["bids"]["statistics"]}
    assert statistics["validBids"]["value"] == 2
    assert statistics["disqualifiedBids"]["value"] == 2
    assert statistics["lowestValidBidValue"]["value"] == 880000
    assert statistics["highestValidBidValue"]["value"] == 925000.5
    assert statistics["lowestValidBidValue"]["currency"] == "CNY"


def test_failed_and_cancelled_tenders_say_why(client, story):
    failed = package_of(client, story("failed").tender)["releases"][-1]
    assert failed["tender"]["status"] == "unsuccessful"
    assert failed["tender"]["amendments"][-1]["rationale"] == (
        "The only compliant bids exceed the ceiling"
    )
    assert {a["status"] for a in failed["awards"]} == {"unsuccessful"}
    assert "details" not in failed["bids"]
    assert failed["tag"] == ["tenderUpdate", "awardUpdate"]

    cancelled = package_of(client, story("cancelled").tender)["releases"][-1]
    assert cancelled["tag"] == ["tenderCancellation"]
    assert cancelled["tender"]["status"] == "cancelled"
    assert cancelled["tender"]["amendments"][-1]["rationale"] == "Funding withdrawn"

    no_bids = package_of(client, story("no_bids").tender)["releases"][-1]
    assert no_bids["tender"]["amendments"][-1]["rationale"] == "Fewer than 3 bids"


def test_a_new_candidates_notice_cancels_the_dropped_candidate(client, validator, story):
    told = story("candidates")
    c = told.companies
    first = told.notices["candidates"]
    first.superseded_at = CANDIDATES + timedelta(days=5)
    db.session.commit()
    second = notice(
        told.tender,
        "candidates",
        CANDIDATES + timedelta(days=5),
        candidates=[candidate(1, c["b"], PRICES["b"])],
    )
    db.session.expire_all()
    package = package_of(client, told.tender)
    assert_valid(validator, package)
    assert suffixes(package)[-2:] == [f"candidates-{first.id}", f"candidates-{second.id}"]
    release = package["releases"][-1]
    assert release["tag"] == ["awardUpdate"]
    statuses = {a["id"]: a["status"] for a in release["awards"]}
    assert statuses == {f"award-{c['a'].id}": "cancelled", f"award-{c['b'].id}": "pending"}


@pytest.fixture
def rich_tender(make_tender, make_company):
    """Two lots, an answered question, one tender document and an addendum with its own
    document that moved the deadline by three days."""
    asker = make_company(name="Asking Secret Co. Ltd.")
    tender = schedule(make_tender(title="Hospital beds", reference="HB-1", keyed=False), PUBLISHED)
    staff = tender.created_by_id
    before = tender.submission_deadline
    tender.submission_deadline = before + timedelta(days=3)
    tender.opening_at += timedelta(days=3)
    addendum = Addendum(
        tender_id=tender.id,
        number=1,
        title="Longer warranty",
        body="The warranty is now 36 months.",
        published_by_id=staff,
        deadline_before=before,
        deadline_after=tender.submission_deadline,
        published_at=PUBLISHED + timedelta(days=8),
    )
    db.session.add_all(
        [
            Enquiry(
                tender_id=tender.id,
                company_id=asker.id,
                question="Are electric beds acceptable?",
                answer="Yes, with a manual fallback.",
                asked_at=PUBLISHED + timedelta(days=3),
                answered_at=PUBLISHED + timedelta(days=4),
                answered_by_id=staff,
            ),
            addendum,
            Lot(tender_id=tender.id, number=2, title="Mattresses", budget=Decimal("50000.00")),
        ]
    )
    db.session.commit()
    add_document(tender, "tender_pdf", "Tender document", PUBLISHED - timedelta(hours=1))
    added = add_document(tender, "addendum_pdf", "Addendum 1", addendum.published_at)
    added.addendum_id = addendum.id
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Tender, tender.id)


def test_an_addendum_is_a_new_release_and_lots_use_the_extension(client, validator, rich_tender):
    package = package_of(client, rich_tender)
    assert_valid(validator, package)
    first, update = package["releases"]
    ocid = first["ocid"]
    assert first["id"] == f"{ocid}-tender" and first["tag"] == ["tender"]
    assert update["id"] == f"{ocid}-update-1" and update["tag"] == ["tenderUpdate"]
    assert update["date"] == "2026-03-10T02:00:00Z"
    # The original deadline in the first release, the moved one after the addendum.
    assert first["tender"]["tenderPeriod"]["endDate"] == "2026-03-22T02:00:00Z"
    assert update["tender"]["tenderPeriod"]["endDate"] == "2026-03-25T02:00:00Z"
    assert first["tender"]["awardPeriod"]["startDate"] == "2026-03-22T03:00:00Z"
    assert update["tender"]["awardPeriod"]["startDate"] == "2026-03-25T03:00:00Z"
    assert [d["title"] for d in first["tender"]["documents"]] == ["Tender document"]
    assert [d["documentType"] for d in update["tender"]["documents"]] == [
        "biddingDocuments",
        "clarifications",
    ]
    assert "amendments" not in first["tender"]
    [amendment] = update["tender"]["amendments"]
    assert amendment["rationale"] == "Longer warranty"
    assert amendment["amendsReleaseID"] == first["id"]
    assert amendment["releaseID"] == update["id"]
    assert first["tender"]["hasEnquiries"] is False  # asked on day 3
    assert update["tender"]["hasEnquiries"] is True
    for release in (first, update):
        assert [lot["title"] for lot in release["tender"]["lots"]] == ["Lot 1", "Mattresses"]
    assert package["extensions"][0].endswith("ocds_lots_extension/v1.1.5/extension.json")


def test_multi_lot_award_relates_each_award_to_its_lot(client, validator, story):
    told = story("candidates")
    tender = told.tender
    grit = Lot(tender_id=tender.id, number=2, title="Grit", budget=Decimal("9000.00"))
    db.session.add(grit)
    db.session.flush()
    c = told.companies
    # Company b's envelope was for lot 2 (the others for lot 1).
    for line in db.session.scalars(select(OpeningLine).where(OpeningLine.tender_id == tender.id)):
        line.lot_id = grit.id if line.company_id == c["b"].id else tender.lot_by_reference("1").id
    db.session.commit()
    winners = [
        dict(candidate(1, c["a"], PRICES["a"]), lot=1),
        dict(candidate(1, c["b"], "8000"), lot=2),
    ]
    notice(tender, "award", AWARDED, candidates=winners)
    db.session.expire_all()
    package = package_of(client, db.session.get(Tender, tender.id))
    assert_valid(validator, package)
    release = package["releases"][-1]
    active = {a["id"]: a.get("relatedLots") for a in release["awards"] if a["status"] == "active"}
    assert active == {f"award-{c['a'].id}-lot-1": ["1"], f"award-{c['b'].id}-lot-2": ["2"]}
    assert len(release["tender"]["lots"]) == 2
    assert len(package["extensions"]) == 2
    related = {d["tenderers"][0]["id"]: d["relatedLots"] for d in release["bids"]["details"]}
    assert related[f"CN-USCC-{c['b'].registration_number}"] == ["2"]
    assert related[f"CN-USCC-{c['a'].registration_number}"] == ["1"]


def test_drafts_have_no_package(client, make_tender):
    draft = make_tender(status="draft", keyed=False)
    assert client.get(f"/api/v1/ocds/tenders/{draft.id}").status_code == 404
    assert client.get("/api/v1/ocds/tenders/999999").status_code == 404


def test_the_ocid_prefix_is_configurable_and_asset_sales_have_no_category(
    app, client, validator, make_tender
):
    tender = make_tender(category="asset_sale", reference="LAND-9", keyed=False)
    app.config["OCDS_PREFIX"] = "ocds-abc123"
    try:
        package = package_of(client, tender)
    finally:
        app.config["OCDS_PREFIX"] = "ocds-fairbid"
    assert_valid(validator, package)
    [release] = package["releases"]
    assert release["ocid"] == f"ocds-abc123-{tender.centre.code}-LAND-9"
    assert "mainProcurementCategory" not in release["tender"]


# -- bulk downloads per centre and month -------------------------------------------------


def test_a_month_holds_exactly_that_months_releases(
    client, validator, story, make_centre, make_tender
):
    centre = make_centre(code="BULK")
    awarded = story("awarded", centre=centre, reference="B-1")
    published = story("published", centre=centre, reference="B-2")
    elsewhere = story("awarded", reference="X-1")  # another centre
    draft = make_tender(centre=centre, status="draft", keyed=False, title="Hidden draft")
    draft.publication_at = PUBLISHED
    db.session.commit()

    index = client.get("/api/v1/ocds/centres/BULK")
    assert index.status_code == 200
    assert [m["month"] for m in index.json["months"]] == ["2026-05", "2026-04", "2026-03"]
    assert (
        index.json["months"][0]["url"] == "http://localhost/api/v1/ocds/centres/BULK/2026-05.json"
    )

    everything = package_of(client, awarded.tender)["releases"]
    everything += package_of(client, published.tender)["releases"]
    for month in ("2026-03", "2026-04", "2026-05"):
        response = client.get(f"/api/v1/ocds/centres/BULK/{month}.json")
        assert response.status_code == 200 and response.mimetype == "application/json"
        bulk = response.json
        assert_valid(validator, bulk)
        assert bulk["uri"] == f"http://localhost/api/v1/ocds/centres/BULK/{month}.json"
        expected = sorted(r["id"] for r in everything if r["date"].startswith(month))
        assert sorted(r["id"] for r in bulk["releases"]) == expected
        # The same releases as in the tenders' own packages.
        by_id = {r["id"]: r for r in everything}
        assert all(r == by_id[r["id"]] for r in bulk["releases"])
        text = response.get_data(as_text=True)
        assert "Hidden draft" not in text and elsewhere.tender.reference not in text
    march = client.get("/api/v1/ocds/centres/BULK/2026-03.json").json
    assert {r["id"].rsplit("-", 1)[-1] for r in march["releases"]} == {"tender"}
    # A finished month comes from the cache the second time, unchanged.
    first = client.get("/api/v1/ocds/centres/BULK/2026-04.json")
    again = client.get("/api/v1/ocds/centres/BULK/2026-04.json")
    assert again.headers["X-OCDS-Cache"] == "hit" and again.json == first.json
    assert again.get_data() == first.get_data()


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-01", "abcd-ef", "2026_01"])
def test_a_malformed_month_is_refused(client, make_centre, month):
    make_centre(code="MONTHS")
    response = client.get(f"/api/v1/ocds/centres/MONTHS/{month}.json")
    assert response.status_code == 400
    assert "YYYY-MM" in response.json["message"]


def test_unknown_centre_and_empty_month_are_not_found(client, make_centre):
    assert client.get("/api/v1/ocds/centres/NOPE").status_code == 404
    assert client.get("/api/v1/ocds/centres/NOPE/2026-03.json").status_code == 404
    make_centre(code="QUIET")
    assert client.get("/api/v1/ocds/centres/QUIET").json["months"] == []
    assert client.get("/api/v1/ocds/centres/QUIET/2026-03.json").status_code == 404


def test_the_portal_links_the_centres_open_data(client, make_centre):
    make_centre(code="LINKED")
    page = client.get("/tenders/?centre=LINKED").get_data(as_text=True)
    assert 'href="/api/v1/ocds/centres/LINKED"' in page


def test_a_failed_tender_without_a_notice_still_says_unsuccessful(client, validator, story):
    told = story("opened")
    told.tender.status = "failed"
    db.session.commit()
    package = package_of(client, told.tender)
    assert_valid(validator, package)
    assert suffixes(package) == ["tender", "opening", "unsuccessful"]
    last = package["releases"][-1]
    assert last["tender"]["status"] == "unsuccessful"
    assert last["date"] == package["releases"][-2]["date"]


def test_the_award_names_the_record_version_of_its_notice_not_a_later_one(client, story, make_user):
    """A countersignature after the candidates notice makes a new version of the record;
    the candidates release keeps naming the version that was published with it."""
    told = story("candidates")
    tender = told.tender
    before = package_of(client, tender)["releases"][-1]
    evaluation_record = db.session.get(EvaluationRecord, told.notices["candidates"].record_id)
    original = db.session.get(TenderDocument, evaluation_record.document_id)
    named = {
        d["id"]
        for award in before["awards"]
        for d in award["documents"]
        if d["documentType"] == "evaluationReports"
    }
    assert named == {str(original.id)}

    member = make_user(Role.EXPERT)
    certificate = SigningCertificate(
        user_id=member.id,
        subject="CN=member",
        serial="ab12",
        certificate_pem="-",
        sealed_key="-",
        not_after=AWARDED + timedelta(days=365),
    )
    db.session.add(certificate)
    db.session.flush()
    later = add_document(tender, "eval_record", "Countersigned", CANDIDATES + timedelta(days=1))
    for signer, moment, version in (
        (None, RECORDED, original),
        (member.id, later.created_at, later),
    ):
        db.session.add(
            RecordSignature(
                record_id=evaluation_record.id,
                signer_id=signer,
                certificate_id=certificate.id,
                field_name=f"signer-{signer}",
                signed_at=moment,
                sha256=version.sha256,
                size=version.size,
            )
        )
    original.superseded_at = later.created_at
    evaluation_record.document_id = later.id
    db.session.commit()
    db.session.expire_all()
    after = package_of(client, db.session.get(Tender, tender.id))["releases"][-1]
    assert after == before


def test_a_re_tender_points_back_to_the_failed_tender(app, client, validator, story, make_user):
    """The new tender made by `retender` (the real service) names the failed one as a prior
    unsuccessful process; the failed tender's own releases stay as they were."""
    from app.results import operations as results
    from app.tenders.template_ops import sync_builtin_templates

    told = story("failed")
    old = told.tender
    before = package_of(client, old)
    goods = next(t for t in sync_builtin_templates() if t.key == "goods")
    old.template_version_id = goods.latest.id
    db.session.commit()
    staff = make_user(Role.STAFF, centre=old.centre)
    with app.test_request_context():
        new = results.retender(staff, old)
    db.session.commit()
    new.status = "published"
    schedule(new, PUBLISHED + timedelta(days=60))
    package = package_of(client, new)
    assert_valid(validator, package)
    related = package["releases"][0]["relatedProcesses"]
    assert related == [
        {
            "id": "prior",
            "relationship": ["unsuccessfulProcess"],
            "title": old.title,
            "scheme": "ocid",
            "identifier": before["releases"][0]["ocid"],
        }
    ]
    assert package_of(client, old)["releases"] == before["releases"]


def test_lots_cancelled_or_added_by_an_addendum_change_from_its_release(
    client, validator, rich_tender
):
    """The addendum cancels Mattresses and adds Pillows: the first release has both first
    lots active and no Pillows; the update has Mattresses cancelled and Pillows."""
    addendum = rich_tender.addenda[0]
    mattresses = rich_tender.lot_by_reference("2")
    mattresses.cancelled_at = addendum.published_at
    mattresses.cancelled_by_addendum_id = addendum.id
    rich_tender.lots.append(Lot(number=3, reference="P", title="Pillows"))
    addendum.lot_changes = [
        {"action": "cancel", "lot": "2"},
        {"action": "add", "lot": "P", "number": 3, "title": "Pillows"},
    ]
    db.session.commit()
    package = package_of(client, rich_tender)
    assert_valid(validator, package)
    first, update = package["releases"]
    assert [(lot["title"], lot.get("status")) for lot in first["tender"]["lots"]] == [
        ("Lot 1", None),
        ("Mattresses", None),
    ]
    assert [(lot["title"], lot.get("status")) for lot in update["tender"]["lots"]] == [
        ("Lot 1", None),
        ("Mattresses", "cancelled"),
        ("Pillows", None),
    ]
