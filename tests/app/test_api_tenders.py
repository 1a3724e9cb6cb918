"""The tender API: tenders from template versions, schedule and money validation,
publication with TOTP, addenda, cancellation, enquiries, registrations, bonds, templates."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.companies.models import CompanyStatus
from app.core.types import utcnow
from app.extensions import db
from app.tenders.models import (
    BondRecord,
    DocumentDownload,
    Enquiry,
    Notification,
    TemplateVersion,
    Tender,
    TenderDocument,
    TenderRegistration,
    TenderTemplate,
)
from app.tenders.template_ops import sync_builtin_templates
from tests.conftest import totp_now
from tests.factories.accounts import token_for
from tests.factories.tenders import create, iso


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def wrong_code(user) -> str:
    totp = pyotp.TOTP(user.totp_secret)
    now = datetime.now(UTC)
    valid = {totp.at(now + timedelta(seconds=30 * step)) for step in (-2, -1, 0, 1, 2)}
    return next(code for code in ("000000", "123456", "999999", "424242") if code not in valid)


@pytest.fixture
def goods_version(app):
    templates = {t.key: t for t in sync_builtin_templates()}
    db.session.commit()
    return templates["goods"].latest


@pytest.fixture
def centre(make_centre):
    return make_centre()


@pytest.fixture
def staff(make_user, centre):
    return make_user(Role.STAFF, centre=centre)


@pytest.fixture
def custodians(make_user, centre):
    return [make_user(Role.CUSTODIAN, centre=centre) for _ in range(3)]


@pytest.fixture
def draft(client, staff, goods_version, custodians):
    response = create(client, token_for(staff), goods_version, custodians)
    assert response.status_code == 201, response.json
    return db.session.get(Tender, response.json["id"])


@pytest.fixture
def published(make_tender, centre, goods_version):
    """A published tender on a real template version (addenda read the template)."""
    tender = make_tender(centre=centre)
    tender.template_version_id = goods_version.id
    db.session.commit()
    return tender


def test_openapi_describes_the_tender_endpoints(client):
    spec = client.get("/api/v1/openapi.json").json
    for path, method in [
        ("/api/v1/tenders", "get"),
        ("/api/v1/tenders", "post"),
        ("/api/v1/tenders/{tender_id}", "patch"),
        ("/api/v1/tenders/{tender_id}/publish", "post"),
        ("/api/v1/tenders/{tender_id}/cancel", "post"),
        ("/api/v1/tenders/{tender_id}/addenda", "post"),
        ("/api/v1/tenders/{tender_id}/enquiries", "get"),
        ("/api/v1/tenders/{tender_id}/enquiries", "post"),
        ("/api/v1/enquiries/{enquiry_id}/answer", "post"),
        ("/api/v1/tenders/{tender_id}/registrations", "get"),
        ("/api/v1/tenders/{tender_id}/registrations", "post"),
        ("/api/v1/registrations/{registration_id}/bonds", "post"),
        ("/api/v1/templates", "get"),
        ("/api/v1/templates/{template_id}", "get"),
        ("/api/v1/templates/{template_id}/copy", "post"),
        ("/api/v1/templates/{template_id}/versions", "post"),
    ]:
        assert method in spec["paths"].get(path, {}), (method, path)
    budget = spec["components"]["schemas"]["TenderIn"]["properties"]["budget"]
    assert "string" in budget["type"] and budget["pattern"]
    versions = spec["paths"]["/api/v1/templates/{template_id}/versions"]["post"]
    assert "TemplateErrorsOut" in json.dumps(versions["responses"]["422"])


def test_staff_create_a_draft_from_a_template_version(client, staff, goods_version, custodians):
    response = create(client, token_for(staff), goods_version, custodians)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "draft" and body["category"] == "goods"
    assert body["budget"] == "1000000.00" and body["lots"][0]["ceiling_price"] == "990000.00"
    assert body["template_version"]["id"] == goods_version.id
    assert body["custodian_count"] == 3 and body["custodian_threshold"] == 2
    tender = db.session.get(Tender, body["id"])
    assert tender.centre_id == staff.centre_id
    # Times given at +08:00 are the same instants in UTC.
    deadline = datetime.fromisoformat(body["submission_deadline"])
    assert deadline == tender.submission_deadline

    # A draft is for its centre only; it is never listed publicly.
    assert client.get(f"/api/v1/tenders/{tender.id}").status_code == 404
    assert client.get(f"/api/v1/tenders/{tender.id}", headers=token_for(staff)).status_code == 200
    assert client.get("/api/v1/tenders").json["total"] == 0


def test_money_as_a_json_number_is_refused(client, staff, goods_version, custodians):
    headers = token_for(staff)
    response = create(client, headers, goods_version, custodians, budget=1000000.0)
    assert response.status_code == 422
    assert "decimal string" in response.json["detail"]["json"]["budget"][0]
    lots = [{"title": "Furniture", "ceiling_price": 990000}]
    response = create(client, headers, goods_version, custodians, lots=lots)
    assert response.status_code == 422
    assert "ceiling_price" in response.json["detail"]["json"]["lots"]["0"]
    response = create(client, headers, goods_version, custodians, bid_bond_amount="10.005")
    assert response.status_code == 422
    assert "two decimals" in response.json["detail"]["json"]["bid_bond_amount"][0]
    assert count(Tender) == 0


def test_schedule_errors_are_clear_and_store_nothing(client, staff, goods_version, custodians):
    headers = token_for(staff)
    naive = (utcnow() + timedelta(days=30)).replace(tzinfo=None).isoformat()
    response = create(client, headers, goods_version, custodians, submission_deadline=naive)
    assert response.status_code == 422
    assert "UTC offset" in response.json["detail"]["json"]["submission_deadline"][0]
    response = create(client, headers, goods_version, custodians, opening_at="next tuesday")
    assert response.status_code == 422

    past = iso(utcnow() - timedelta(days=1))
    response = create(client, headers, goods_version, custodians, submission_deadline=past)
    assert response.status_code == 400 and response.json["error"] == "deadline_past"
    soon = iso(utcnow() + timedelta(days=5))
    response = create(
        client,
        headers,
        goods_version,
        custodians,
        enquiry_deadline=iso(utcnow() + timedelta(days=2)),
        submission_deadline=soon,
        opening_at=soon,
    )
    assert response.status_code == 400 and response.json["error"] == "deadline_too_soon"
    assert "at least 20 days after publication" in response.json["message"]
    assert count(Tender) == 0


def test_role_and_centre_are_checked_before_the_body(
    client, make_user, draft, goods_version, custodians
):
    bidder = token_for(make_user(Role.BIDDER))
    assert client.post("/api/v1/tenders", json={}, headers=bidder).status_code == 403
    other_staff = token_for(make_user(Role.STAFF))
    response = client.patch(f"/api/v1/tenders/{draft.id}", json={}, headers=other_staff)
    assert response.status_code == 404  # another centre's draft is not even there
    response = create(client, other_staff, goods_version, custodians, centre_id=draft.centre_id)
    assert response.status_code == 403
    admin = token_for(make_user(Role.ADMIN))
    response = create(client, admin, goods_version, custodians, reference="HZ-2")
    assert response.status_code == 400 and response.json["error"] == "centre"
    assert count(Tender) == 1


def test_patch_edits_a_draft_only(client, staff, draft, make_tender, centre):
    headers = token_for(staff)
    response = client.patch(
        f"/api/v1/tenders/{draft.id}",
        json={"title": "Library furniture", "budget": "900000.00"},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    assert response.json["title"] == "Library furniture"
    assert response.json["budget"] == "900000.00"
    assert response.json["reference"] == "HZ-2025-G-001"  # untouched fields kept
    response = client.patch(f"/api/v1/tenders/{draft.id}", json={"budget": 5}, headers=headers)
    assert response.status_code == 422
    assert db.session.get(Tender, draft.id).budget == 900000

    published = make_tender(centre=centre)
    response = client.patch(f"/api/v1/tenders/{published.id}", json={"title": "X"}, headers=headers)
    assert response.status_code == 409 and response.json["error"] == "not_draft"


def test_publish_with_a_wrong_code_changes_nothing(client, staff, draft):
    headers = token_for(staff)
    before = count(AuditEvent)
    response = client.post(
        f"/api/v1/tenders/{draft.id}/publish",
        json={"totp_code": wrong_code(staff)},
        headers=headers,
    )
    assert response.status_code == 403 and response.json["error"] == "bad_totp"
    db.session.expire_all()
    tender = db.session.get(Tender, draft.id)
    assert tender.status == "draft" and tender.published_at is None
    assert count(TenderDocument) == 0
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.seq > before).order_by(AuditEvent.seq)
    ).all()
    assert actions == ["auth.second_factor_failed"]

    response = client.post(
        f"/api/v1/tenders/{draft.id}/publish", json={"totp_code": totp_now(staff)}, headers=headers
    )
    assert response.status_code == 200, response.json
    assert response.json["status"] == "published"
    documents = response.json["documents"]
    assert {d["kind"] for d in documents} == {"tender_html", "tender_pdf"}
    assert all(len(d["sha256"]) == 64 for d in documents)
    public = client.get("/api/v1/tenders").json
    assert [t["id"] for t in public["tenders"]] == [draft.id]
    again = client.post(
        f"/api/v1/tenders/{draft.id}/publish", json={"totp_code": "123456"}, headers=headers
    )
    assert again.status_code == 409


def test_registered_bidder_downloads_the_documents_with_their_hash(client, staff, draft, make_user):
    client.post(
        f"/api/v1/tenders/{draft.id}/publish",
        json={"totp_code": totp_now(staff)},
        headers=token_for(staff),
    )
    pdf = next(
        d
        for d in client.get(f"/api/v1/tenders/{draft.id}").json["documents"]
        if d["kind"] == "tender_pdf"
    )
    url = f"/api/v1/tenders/{draft.id}/documents/{pdf['id']}"
    bidder = make_user(Role.BIDDER)
    headers = token_for(bidder)
    refused = client.get(url, headers=headers)
    assert refused.status_code == 403 and refused.json["error"] == "not_registered"
    client.post(f"/api/v1/tenders/{draft.id}/registrations", headers=headers)
    response = client.get(url, headers=headers)
    try:
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert hashlib.sha256(response.data).hexdigest() == pdf["sha256"]
        digest = base64.b64encode(bytes.fromhex(pdf["sha256"])).decode()
        assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    finally:
        response.close()
    download = db.session.scalar(select(DocumentDownload))
    assert (download.document_id, download.company_id) == (pdf["id"], bidder.company_id)


def test_addendum_extends_a_close_deadline_and_cancellation(client, staff, published, make_user):
    headers = token_for(staff)
    published.submission_deadline = utcnow() + timedelta(days=1)
    db.session.commit()
    response = client.post(
        f"/api/v1/tenders/{published.id}/addenda",
        json={"title": "Clarification", "body": "Shelves are **steel**.", "new_deadline": "soon"},
        headers=headers,
    )
    assert response.status_code == 422
    response = client.post(
        f"/api/v1/tenders/{published.id}/addenda",
        json={"title": "Clarification", "body": "Shelves are **steel**."},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    assert response.json["addendum"]["number"] == 1
    new_deadline = datetime.fromisoformat(response.json["tender"]["submission_deadline"])
    assert new_deadline >= utcnow() + timedelta(days=3) - timedelta(minutes=1)

    other = token_for(make_user(Role.STAFF))
    response = client.post(
        f"/api/v1/tenders/{published.id}/cancel", json={"reason": "x"}, headers=other
    )
    assert response.status_code == 403
    response = client.post(f"/api/v1/tenders/{published.id}/cancel", json={}, headers=headers)
    assert response.status_code == 422
    response = client.post(
        f"/api/v1/tenders/{published.id}/cancel",
        json={"reason": "The budget was withdrawn."},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"
    assert response.json["cancel_reason"] == "The budget was withdrawn."
    again = client.post(
        f"/api/v1/tenders/{published.id}/cancel", json={"reason": "again"}, headers=headers
    )
    assert again.status_code == 409


def test_registrations_and_bonds(client, staff, published, make_user, make_company):
    bidder = make_user(Role.BIDDER)
    headers = token_for(bidder)
    url = f"/api/v1/tenders/{published.id}/registrations"
    response = client.post(url, headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["bond_status"] == "missing"
    assert response.json["bond_required"] == "10000.00"
    registration_id = response.json["id"]
    again = client.post(url, headers=headers)
    assert again.status_code == 409 and again.json["error"] == "registered"

    pending = make_user(Role.BIDDER, company=make_company(status=CompanyStatus.PENDING))
    refused = client.post(url, headers=token_for(pending))
    assert refused.status_code == 403 and refused.json["error"] == "company_not_approved"
    rival = make_user(Role.BIDDER)
    client.post(url, headers=token_for(rival))

    staff_headers = token_for(staff)
    bonds = f"/api/v1/registrations/{registration_id}/bonds"
    number = client.post(
        bonds, json={"kind": "payment", "amount": 4000, "reference": "TX-1"}, headers=staff_headers
    )
    assert number.status_code == 422 and count(BondRecord) == 0
    other = client.post(
        bonds,
        json={"kind": "payment", "amount": "4000.00", "reference": "TX-1"},
        headers=token_for(make_user(Role.STAFF)),
    )
    assert other.status_code == 403
    response = client.post(
        bonds,
        json={"kind": "payment", "amount": "4000.00", "reference": "TX-1"},
        headers=staff_headers,
    )
    assert response.status_code == 201, response.json
    assert response.json["bond"]["amount"] == "4000.00"
    assert response.json["registration"]["bond_status"] == "partial"
    response = client.post(
        bonds,
        json={"kind": "guarantee", "amount": "6000.00", "reference": "G-7"},
        headers=staff_headers,
    )
    assert response.json["registration"]["bond_status"] == "paid"
    assert response.json["registration"]["bond_total"] == "10000.00"

    listing = client.get(url, headers=staff_headers).json
    assert {r["company"]["id"]: r["bond_status"] for r in listing} == {
        bidder.company_id: "paid",
        rival.company_id: "missing",
    }
    own = client.get(url, headers=headers).json
    assert [r["company"]["id"] for r in own] == [bidder.company_id]
    assert client.get(url, headers=token_for(make_user(Role.STAFF))).status_code == 403


def test_registration_after_the_deadline_stores_nothing(client, make_user, make_tender):
    closed = make_tender(days=-1)
    before = count(AuditEvent)
    response = client.post(
        f"/api/v1/tenders/{closed.id}/registrations", headers=token_for(make_user(Role.BIDDER))
    )
    assert response.status_code == 409 and response.json["error"] == "deadline_passed"
    assert count(TenderRegistration) == 0 and count(AuditEvent) == before + 1  # the token


def test_enquiry_answer_is_public_without_the_company(client, staff, published, make_user):
    bidder = make_user(Role.BIDDER)
    headers = token_for(bidder)
    url = f"/api/v1/tenders/{published.id}/enquiries"
    stranger = client.post(
        url, json={"question": "Can we bid?"}, headers=token_for(make_user(Role.BIDDER))
    )
    assert stranger.status_code == 403 and stranger.json["error"] == "not_registered"
    client.post(f"/api/v1/tenders/{published.id}/registrations", headers=headers)
    response = client.post(url, json={"question": "Is assembly included?"}, headers=headers)
    assert response.status_code == 201, response.json
    enquiry_id = response.json["id"]

    assert client.get(url).json == []  # unanswered: only the asker and staff see it
    assert [e["id"] for e in client.get(url, headers=headers).json] == [enquiry_id]
    assert [e["id"] for e in client.get(url, headers=token_for(staff)).json] == [enquiry_id]

    answer_url = f"/api/v1/enquiries/{enquiry_id}/answer"
    other = client.post(answer_url, json={"answer": "No"}, headers=token_for(make_user(Role.STAFF)))
    assert other.status_code == 403
    response = client.post(answer_url, json={"answer": "Yes, on site."}, headers=token_for(staff))
    assert response.status_code == 200, response.json
    public = client.get(url)
    assert public.json[0]["answer"] == "Yes, on site."
    assert "company" not in public.json[0] and "company_id" not in public.json[0]
    assert bidder.company.name not in public.get_data(as_text=True)
    assert db.session.scalar(select(Enquiry)).answered_by_id == staff.id
    assert db.session.scalar(select(Notification).where(Notification.user_id == bidder.id))
    again = client.post(answer_url, json={"answer": "Again"}, headers=token_for(staff))
    assert again.status_code == 409


def test_public_list_filters_and_pages(client, make_tender, make_centre):
    north, south = make_centre(code="NORTH"), make_centre(code="SOUTH")
    goods = make_tender(centre=north, category="goods")
    works = make_tender(centre=south, category="works")
    cancelled = make_tender(centre=south, status="cancelled")
    make_tender(centre=north, status="draft")

    def ids(**query):
        return {t["id"] for t in client.get("/api/v1/tenders", query_string=query).json["tenders"]}

    assert ids() == {goods.id, works.id, cancelled.id}
    assert ids(category="works") == {works.id}
    assert ids(centre="south") == {works.id, cancelled.id}
    assert ids(centre_id=north.id) == {goods.id}
    assert ids(status="cancelled") == {cancelled.id}
    assert client.get("/api/v1/tenders?status=draft").status_code == 422
    page = client.get("/api/v1/tenders?per_page=2&page=2").json
    assert (page["total"], page["pages"], len(page["tenders"])) == (3, 2, 1)


def test_templates_listed_copied_and_versioned(client, staff, goods_version, make_user):
    headers = token_for(staff)
    listing = client.get("/api/v1/templates", headers=headers).json
    builtin = next(t for t in listing if t["key"] == "goods")
    assert builtin["builtin"] is True
    detail = client.get(f"/api/v1/templates/{builtin['id']}", headers=headers).json
    assert detail["yaml"] == goods_version.yaml_text

    read_only = client.post(
        f"/api/v1/templates/{builtin['id']}/versions", json={"yaml": "x"}, headers=headers
    )
    assert read_only.status_code == 400 and read_only.json["error"] == "builtin"

    response = client.post(
        f"/api/v1/templates/{builtin['id']}/copy", json={"key": "goods-library"}, headers=headers
    )
    assert response.status_code == 201, response.json
    copy_id = response.json["id"]
    assert response.json["centre_id"] == staff.centre_id
    assert response.json["latest"]["sha256"] == goods_version.sha256
    taken = client.post(
        f"/api/v1/templates/{builtin['id']}/copy", json={"key": "goods-library"}, headers=headers
    )
    assert taken.status_code == 409

    versions = f"/api/v1/templates/{copy_id}/versions"
    broken = goods_version.yaml_text.replace("direction: lowest_wins", "direction: sideways")
    response = client.post(versions, json={"yaml": broken}, headers=headers)
    assert response.status_code == 422
    assert response.json["error"] == "template"
    assert "direction" in {e["path"] for e in response.json["errors"]}
    assert all({"path", "message"} <= e.keys() for e in response.json["errors"])
    assert (
        db.session.scalar(
            select(func.count(TemplateVersion.id)).where(TemplateVersion.template_id == copy_id)
        )
        == 1
    )

    edited = goods_version.yaml_text.replace("addendum_min_days: 15", "addendum_min_days: 16")
    response = client.post(versions, json={"yaml": edited}, headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["number"] == 2 and response.json["yaml"] == edited
    same = client.post(versions, json={"yaml": edited}, headers=headers)
    assert same.status_code == 200 and same.json["number"] == 2

    other = token_for(make_user(Role.STAFF))
    assert client.get(f"/api/v1/templates/{copy_id}", headers=other).status_code == 403
    assert client.post(versions, json={}, headers=other).status_code == 403
    names = {t["key"] for t in client.get("/api/v1/templates", headers=other).json}
    assert "goods-library" not in names and "goods" in names
    assert db.session.get(TenderTemplate, copy_id).centre_id == staff.centre_id
