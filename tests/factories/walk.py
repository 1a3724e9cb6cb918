"""The permission walk's world: a user of every role and an object behind every URL
parameter, the values the walk puts in each URL rule, and a signed-in client per role.
Shared by tests/app/test_permissions.py (allow/deny) and tests/app/test_translated_pages.py
(every page it renders, in Korean and Chinese)."""

from __future__ import annotations

from app.accounts import operations as account_ops
from app.accounts.models import Role
from app.bids.models import Bid, UploadSession
from app.companies.models import CompanyAlias, CompanyCertificate, CompanyStatus
from app.core.types import utcnow
from app.extensions import db
from app.panels.models import ExpertProfile
from app.tenders.models import Enquiry, Notification, TenderDocument, TenderRegistration
from tests.app.expectations import ROLES
from tests.conftest import AuthActions


def build_world(make_centre, make_company, make_user, make_tender) -> dict:
    """Two centres, a user of every role, a pending company, a published tender with a
    document, a registration, an enquiry, two bids and an upload: what the walk routes to."""
    centre_a, centre_b = make_centre(), make_centre()
    users = {
        "bidder": make_user(Role.BIDDER),
        "expert": make_user(Role.EXPERT),
        "staff_a": make_user(Role.STAFF, centre=centre_a),
        "staff_b": make_user(Role.STAFF, centre=centre_b),
        "custodian": make_user(Role.CUSTODIAN, centre=centre_a),
        "supervisor": make_user(Role.SUPERVISOR),
        "admin": make_user(Role.ADMIN),
    }
    company = make_company(centre=centre_a, status=CompanyStatus.PENDING)
    # Objects the walk may change without disturbing the signed-in role users.
    spare_user = make_user(Role.EXPERT)
    # An expert of centre A's pool (staff of B may not edit them).
    pool_expert = make_user(Role.EXPERT)
    db.session.add(ExpertProfile(user_id=pool_expert.id, centre_id=centre_a.id))
    spare_token = account_ops.create_api_token(users["admin"], "spare")
    spare_token_id = account_ops.api_token_record(spare_token).id
    tender = make_tender(centre=centre_a)
    bidder_company = users["bidder"].company
    document = TenderDocument(
        tender_id=tender.id,
        kind="tender_pdf",
        title="Tender document",
        filename="t.pdf",
        content_type="application/pdf",
        size=4,
        sha256="a" * 64,
    )
    registration = TenderRegistration(
        tender_id=tender.id, company_id=bidder_company.id, registered_by_id=users["bidder"].id
    )
    enquiry = Enquiry(tender_id=tender.id, company_id=bidder_company.id, question="When?")
    certificate = CompanyCertificate(company_id=bidder_company.id, name="ISO 9001", number="1")
    alias = CompanyAlias(company_id=bidder_company.id, alias="Old Name Ltd.")
    notification = Notification(user_id=users["bidder"].id, title="Hello")
    db.session.add_all([document, registration, enquiry, certificate, alias, notification])
    db.session.flush()
    # The bidder's company's bid and resumable upload (no bytes: the walk only routes).
    bid = Bid(
        tender_id=tender.id,
        company_id=bidder_company.id,
        submitted_by_id=users["bidder"].id,
        envelope_sha256="b" * 64,
        size=1,
        received_at=utcnow(),
        receipt="{}",
    )
    upload = UploadSession(
        id="00000000-0000-4000-8000-000000000001",
        tender_id=tender.id,
        company_id=bidder_company.id,
        user_id=users["bidder"].id,
        declared_size=1,
    )
    # A second submitted bid of the same company: the walk withdraws the first one (bid
    # routes sort before the results routes), and objecting needs a submitted bid.
    kept_bid = Bid(
        tender_id=tender.id,
        company_id=bidder_company.id,
        submitted_by_id=users["bidder"].id,
        envelope_sha256="c" * 64,
        size=1,
        received_at=utcnow(),
        receipt="{}",
    )
    db.session.add_all([bid, kept_bid, upload])
    db.session.commit()
    return {
        "centre": centre_a,
        "company": company,
        "users": users,
        "spare_user": spare_user,
        "pool_expert": pool_expert,
        "spare_token_id": spare_token_id,
        "tender": tender,
        "template_id": tender.template_version.template_id,
        "document": document,
        "registration": registration,
        "enquiry": enquiry,
        "certificate": certificate,
        "alias": alias,
        "notification": notification,
        "bid": bid,
        "upload": upload,
    }


def url_args(rule, world) -> dict:
    values = {
        "company_id": world["company"].id,
        "centre_id": world["centre"].id,
        "user_id": world["spare_user"].id,
        "expert_id": world["pool_expert"].id,
        "token_id": world["spare_token_id"],
        "token": "not-a-token",
        "code": "ko",
        "tender_id": world["tender"].id,
        "template_id": world["template_id"],
        "document_id": world["document"].id,
        "registration_id": world["registration"].id,
        "enquiry_id": world["enquiry"].id,
        "certificate_id": world["certificate"].id,
        "alias_id": world["alias"].id,
        "notification_id": world["notification"].id,
        "bid_id": world["bid"].id,
        "session_id": world["upload"].id,
        "objection_id": 0,  # results: no objection in the world; the role gate comes first
        "notice_id": 0,  # results: no notice in the world; 404 after the public check
        "alert_id": 0,  # clock: no alert in the world; the role gate comes first
        "flag_id": 0,  # red flags: none in the world; the role gate comes first
        "seq": 1,  # portal: no signed checkpoint in the world; 404
        "centre_code": world["centre"].code,
        "month": "2026-01",
        "category": "goods",
        "table": "centres",  # supervision: a statistics table
        "page": "bidder",  # the user guide
        "name": "bidder-start-en.png",
        "filename": "css/app.css" if rule.endpoint == "static" else "pico.min.css",
    }
    return {name: values[name] for name in rule.arguments}


def denied(response, api: bool) -> bool:
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("Location", "")
    return not api and response.status_code == 302 and "/accounts/login?next=" in location


def clients_by_role(app, world):
    from app.extensions import db

    clients, tokens = {}, {}
    for role in ROLES:
        client = app.test_client()
        if role != "anonymous":
            user = world["users"][role]
            AuthActions(client).login(user)
            tokens[role] = account_ops.create_api_token(user, "walk")
        clients[role] = client
    db.session.commit()
    return clients, tokens
