"""Staff pages: templates (copy, edit, versions, live preview), tenders (create with the
schedule rules, publish with TOTP, documents with SHA-256, addenda, cancellation,
attachments), and who may do what."""

from __future__ import annotations

import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
import pytest
from sqlalchemy import func, select

from app import tender_templates
from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.core.types import utcnow
from app.extensions import db
from app.tenders.models import (
    Addendum,
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
from tests.factories.tenders import create_tender, local, tender_data

# --- helpers -------------------------------------------------------------------------------


def next_code(user) -> str:
    """A TOTP code of the next time step: sign-in used the current one, which is never
    accepted twice."""
    return pyotp.TOTP(user.totp_secret).at(time.time() + 30)


def text(response) -> str:
    return response.get_data(as_text=True)


def blob_files(app) -> list[Path]:
    root = Path(app.config["BLOB_DIR"] or Path(app.instance_path) / "blobs")
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def builtins(app):
    templates = sync_builtin_templates()
    db.session.commit()
    return {t.key: t for t in templates}


@pytest.fixture
def centre(make_centre):
    return make_centre(name="Qinghe Trading Centre")


@pytest.fixture
def staff(make_user, centre):
    return make_user(Role.STAFF, centre=centre)


@pytest.fixture
def custodians(make_user, centre):
    return [make_user(Role.CUSTODIAN, centre=centre) for _ in range(3)]


def tender_count() -> int:
    return db.session.scalar(select(func.count(Tender.id)))


@pytest.fixture
def draft(app, client, auth, staff, builtins, custodians):
    """A draft goods tender created through the form by `staff` (signed in)."""
    auth.login(staff)
    response = create_tender(client, app, builtins["goods"].latest, custodians)
    assert response.status_code == 302, text(response)[:2000]
    return db.session.scalar(select(Tender).where(Tender.reference == "QH-2025-001"))


# --- templates -----------------------------------------------------------------------------


def test_builtin_templates_sync_and_list(client, auth, staff, builtins):
    assert set(builtins) == set(tender_templates.BUILTIN_KEYS)
    assert all(t.centre_id is None and t.latest.number == 1 for t in builtins.values())
    # A second sync with unchanged texts adds no version.
    sync_builtin_templates()
    db.session.commit()
    assert db.session.scalar(select(func.count(TemplateVersion.id))) == len(builtins)

    auth.login(staff)
    page = client.get("/centre/templates/")
    assert page.status_code == 200
    for template in builtins.values():
        assert template.name in text(page)
    shown = client.get(f"/centre/templates/{builtins['works'].id}")
    assert shown.status_code == 200
    assert builtins["works"].latest.sha256 in text(shown)
    assert "average_benchmark" in text(shown)


def test_copy_edit_invalid_then_valid_save(client, auth, staff, builtins, centre):
    auth.login(staff)
    response = client.post(
        f"/centre/templates/{builtins['works'].id}/copy", data={"key": "works-roads"}
    )
    assert response.status_code == 302
    copy = db.session.scalar(
        select(TenderTemplate).where(
            TenderTemplate.centre_id == centre.id, TenderTemplate.key == "works-roads"
        )
    )
    assert copy is not None and len(copy.versions) == 1
    assert response.headers["Location"].endswith(f"/centre/templates/{copy.id}/edit")
    original = copy.latest.yaml_text
    edit_page = client.get(f"/centre/templates/{copy.id}/edit")
    assert edit_page.status_code == 200
    assert "js/template_preview.js" in text(edit_page)

    # Invalid: every error shown with its path, nothing saved.
    broken = original.replace('k: "-0.03"', 'k: "0.5"').replace(
        "direction: lowest_wins", "direction: sideways"
    )
    response = client.post(f"/centre/templates/{copy.id}/edit", data={"yaml_text": broken})
    assert response.status_code == 422
    body = text(response)
    assert "price.params.k" in body and "must be between -0.2 and 0.2" in body
    assert "<code>direction</code>" in body
    db.session.expire_all()
    assert [v.number for v in db.session.get(TenderTemplate, copy.id).versions] == [1]

    # Valid: version 2 with its own SHA-256.
    changed = original.replace('k: "-0.03"', 'k: "-0.05"')
    response = client.post(f"/centre/templates/{copy.id}/edit", data={"yaml_text": changed})
    assert response.status_code == 302
    db.session.expire_all()
    versions = db.session.get(TenderTemplate, copy.id).versions
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].sha256 == hashlib.sha256(changed.encode()).hexdigest()
    assert versions[1].created_by_id == staff.id
    shown = client.get(f"/centre/templates/{copy.id}")
    assert versions[0].sha256 in text(shown) and versions[1].sha256 in text(shown)

    # Built-ins stay read-only; the key of a copy is unique in the centre.
    response = client.get(f"/centre/templates/{builtins['works'].id}/edit")
    assert response.status_code == 302
    response = client.post(
        f"/centre/templates/{builtins['works'].id}/copy",
        data={"key": "works-roads"},
        follow_redirects=True,
    )
    assert "already has a template with that key" in text(response)


def test_preview_renders_the_document_or_the_errors(client, auth, staff, builtins):
    auth.login(staff)
    goods = builtins["goods"].latest.yaml_text
    response = client.post("/centre/templates/preview", data={"yaml_text": goods})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    body = text(response)
    assert "<h1>" in body and "<table>" in body
    assert "<script" not in body and "style=" not in body

    hostile = goods.replace(
        "# {{ tender.title }}", "# {{ tender.title }}\n\n    <script>alert(1)</script>", 1
    )
    response = client.post("/centre/templates/preview", data={"yaml_text": hostile})
    assert response.status_code == 200
    assert "<script>" not in text(response) and "&lt;script&gt;" in text(response)

    response = client.post(
        "/centre/templates/preview",
        data={"yaml_text": goods.replace("{{ tender.title }}", "{{ tender.secret }}", 1)},
    )
    assert response.status_code == 422
    assert "body" in text(response) and "tender.secret" in text(response)

    response = client.post("/centre/templates/preview", data={"yaml_text": "a: [unclosed"})
    assert response.status_code == 422
    assert "line" in text(response)


# --- tenders -------------------------------------------------------------------------------


def test_create_tender_from_a_template_version(app, client, draft, builtins, custodians):
    assert draft.status == "draft"
    assert draft.template_version_id == builtins["goods"].latest.id
    assert draft.budget == Decimal("1000000.00")
    assert [lot.title for lot in draft.lots] == ["Desks and chairs"]
    assert draft.lots[0].ceiling_price == Decimal("990000.00")
    assert {c.user_id for c in draft.custodians} == {c.id for c in custodians}
    # The datetime-local value was read in the centre's time zone and stored in UTC.
    sent = datetime.strptime(
        tender_data(app, custodians)["submission_deadline"], "%Y-%m-%dT%H:%M"
    ).replace(tzinfo=ZoneInfo(app.config["BABEL_DEFAULT_TIMEZONE"]))
    assert draft.submission_deadline == sent.astimezone(UTC)

    page = client.get(f"/centre/tenders/{draft.id}")
    assert page.status_code == 200
    assert "QH-2025-001" in text(page) and 'name="code"' in text(page)
    listing = client.get("/centre/tenders/?status=draft")
    assert "School desks" in text(listing)
    assert "School desks" not in text(client.get("/centre/tenders/?status=published"))
    # Several lots: blank rows are ignored.
    response = create_tender(
        client,
        app,
        builtins["goods"].latest,
        custodians,
        reference="QH-2025-002",
        **{"lots-1-title": "Blackboards", "lots-1-ceiling_price": "5000.00"},
    )
    assert response.status_code == 302
    two = db.session.scalar(select(Tender).where(Tender.reference == "QH-2025-002"))
    assert [lot.title for lot in two.lots] == ["Desks and chairs", "Blackboards"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"submission_deadline": "past"}, "deadline is in the past"),
        ({"submission_deadline": "soon"}, "at least 20 days after publication"),
        ({"opening_at": "before"}, "opening cannot come before"),
        ({"bid_bond_amount": "20000.01"}, "at most 2 % of the budget"),
        ({"custodian_threshold": "4"}, "2 ≤ k ≤ n"),
        ({"budget": "12.345"}, "at most two decimals"),
    ],
)
def test_create_tender_schedule_and_amount_rules(
    app, client, auth, staff, builtins, custodians, overrides, message
):
    auth.login(staff)
    data = tender_data(app, custodians)
    publication = datetime.strptime(data["publication_at"], "%Y-%m-%dT%H:%M")
    zone = ZoneInfo(app.config["BABEL_DEFAULT_TIMEZONE"])
    moments = {
        "past": utcnow() - timedelta(days=1),
        "soon": publication.replace(tzinfo=zone) + timedelta(days=10),
        "before": datetime.strptime(data["submission_deadline"], "%Y-%m-%dT%H:%M").replace(
            tzinfo=zone
        )
        - timedelta(hours=1),
    }
    for name, value in overrides.items():
        data[name] = local(app, moments[value]) if value in moments else value
    if overrides.get("submission_deadline") == "past":
        data["publication_at"] = local(app, utcnow() - timedelta(days=30))
        data["enquiry_deadline"] = local(app, utcnow() - timedelta(days=5))
        data["opening_at"] = data["submission_deadline"]
    if overrides.get("submission_deadline") == "soon":
        data["enquiry_deadline"] = data["publication_at"]
        data["opening_at"] = data["submission_deadline"]
    response = client.post(f"/centre/tenders/new?version={builtins['goods'].latest.id}", data=data)
    assert response.status_code == 400
    assert message in text(response)
    assert tender_count() == 0


def test_duplicate_reference_is_refused(app, client, draft, builtins, custodians):
    response = create_tender(
        client, app, builtins["goods"].latest, custodians, reference="qh-2025-001"
    )
    assert response.status_code == 409
    assert "already used in your centre" in text(response)
    assert tender_count() == 1


def test_edit_a_draft(app, client, draft, custodians):
    page = client.get(f"/centre/tenders/{draft.id}/edit")
    assert page.status_code == 200 and "QH-2025-001" in text(page)
    data = tender_data(app, custodians, title="School desks and chairs")
    response = client.post(f"/centre/tenders/{draft.id}/edit", data=data)
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Tender, draft.id).title == "School desks and chairs"


def test_publication_needs_the_right_code(client, staff, draft):
    response = client.post(f"/centre/tenders/{draft.id}/publish", data={"code": "000000"})
    assert response.status_code == 401
    assert "not valid" in text(response)
    db.session.expire_all()
    tender = db.session.get(Tender, draft.id)
    assert tender.status == "draft" and tender.published_at is None
    assert tender.documents == []
    # The failed attempt is in the audit log.
    assert db.session.scalar(
        select(func.count(AuditEvent.seq)).where(AuditEvent.action == "auth.second_factor_failed")
    )


def test_a_tender_of_several_lots_is_published(client, staff, draft):
    """Lots are separate competitions (issue 14): a tender of several lots is published like
    any other, its lots kept."""
    from app.tenders.models import Lot

    db.session.add(
        Lot(
            tender_id=draft.id,
            number=2,
            title="Blackboards",
            budget=Decimal("5000"),
            ceiling_price=Decimal("4900"),
        )
    )
    db.session.commit()
    response = client.post(f"/centre/tenders/{draft.id}/publish", data={"code": next_code(staff)})
    assert response.status_code == 302, text(response)[-3000:]
    db.session.expire_all()
    tender = db.session.get(Tender, draft.id)
    assert tender.status == "published" and tender.published_at is not None
    assert [lot.number for lot in tender.lots] == [1, 2]


def test_publication_renders_the_documents(app, client, staff, draft):
    response = client.post(f"/centre/tenders/{draft.id}/publish", data={"code": next_code(staff)})
    assert response.status_code == 302, text(response)[:2000]
    db.session.expire_all()
    tender = db.session.get(Tender, draft.id)
    assert tender.status == "published" and tender.published_by_id == staff.id
    kinds = sorted(d.kind for d in tender.documents)
    assert kinds == ["tender_html", "tender_pdf"]

    page = text(client.get(f"/centre/tenders/{tender.id}"))
    for document in tender.documents:
        assert document.sha256 in page
        with client.get(f"/centre/documents/{document.id}") as download:
            assert download.status_code == 200
            assert "attachment" in download.headers["Content-Disposition"]
            content_type = download.headers["Content-Type"]
            data = download.get_data()
        assert hashlib.sha256(data).hexdigest() == document.sha256
        if document.kind == "tender_pdf":
            assert data.startswith(b"%PDF-")
            assert content_type == "application/pdf"
        else:
            # One charset, not `text/html; charset=utf-8; charset=utf-8`.
            assert content_type == "text/html; charset=utf-8"
            html = data.decode()
            assert "School desks" in html and "QH-2025-001" in html
            assert "990,000.00" in html
    # Staff copies are not counted as bidders' downloads.
    assert db.session.scalar(select(func.count(DocumentDownload.id))) == 0
    # A published tender changes only through addenda.
    response = client.get(f"/centre/tenders/{tender.id}/edit", follow_redirects=True)
    assert "only through addenda" in text(response)


def _register(tender, bidder):
    registration = TenderRegistration(
        tender_id=tender.id, company_id=bidder.company_id, registered_by_id=bidder.id
    )
    db.session.add(registration)
    db.session.commit()
    return registration


def test_late_addendum_extends_the_deadline_and_notifies_bidders(
    app, client, auth, centre, staff, make_tender, make_user, outbox
):
    tender = make_tender(centre=centre, days=2)
    bidder = make_user(Role.BIDDER)
    _register(tender, bidder)
    deadline = tender.submission_deadline
    auth.login(staff)
    response = client.post(
        f"/centre/tenders/{tender.id}/addenda",
        data={"title": "Corrected quantities", "body": "Lot 1 now has **120** desks."},
    )
    assert response.status_code == 302, text(response)[:2000]
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    addendum = db.session.scalar(select(Addendum).where(Addendum.tender_id == tender.id))
    assert addendum.number == 1 and addendum.deadline_before == deadline
    assert tender.submission_deadline >= utcnow() + timedelta(days=15) - timedelta(minutes=1)
    assert tender.opening_at - tender.submission_deadline == timedelta(hours=1)
    document = db.session.scalar(
        select(TenderDocument).where(TenderDocument.addendum_id == addendum.id)
    )
    assert document.kind == "addendum_pdf"
    assert document.sha256 in text(client.get(f"/centre/tenders/{tender.id}"))

    notification = db.session.scalar(select(Notification).where(Notification.user_id == bidder.id))
    assert notification is not None and tender.reference in notification.title
    messages = [m for m in outbox.messages() if bidder.email in m.to]
    assert len(messages) == 1
    assert "Corrected quantities" in messages[0].body
    assert "deadline moves" in messages[0].body


def test_addendum_needs_title_and_text(client, auth, centre, staff, make_tender):
    tender = make_tender(centre=centre)
    auth.login(staff)
    response = client.post(f"/centre/tenders/{tender.id}/addenda", data={"title": "Only"})
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(Addendum.id))) == 0


def test_cancel_with_a_public_reason(client, auth, centre, staff, make_tender, make_user, outbox):
    tender = make_tender(centre=centre)
    bidder = make_user(Role.BIDDER)
    _register(tender, bidder)
    auth.login(staff)
    response = client.post(f"/centre/tenders/{tender.id}/cancel", data={"reason": ""})
    assert response.status_code == 400
    response = client.post(
        f"/centre/tenders/{tender.id}/cancel", data={"reason": "The budget was withdrawn."}
    )
    assert response.status_code == 302
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    assert tender.status == "cancelled" and tender.cancel_reason == "The budget was withdrawn."
    assert "The budget was withdrawn." in text(client.get(f"/centre/tenders/{tender.id}"))
    assert any("The budget was withdrawn." in m.body for m in outbox.messages())


def test_answer_an_enquiry_and_record_a_bond(client, auth, centre, staff, make_tender, make_user):
    tender = make_tender(centre=centre)
    bidder = make_user(Role.BIDDER)
    registration = _register(tender, bidder)
    enquiry = Enquiry(tender_id=tender.id, company_id=bidder.company_id, question="Colour?")
    db.session.add(enquiry)
    db.session.commit()
    auth.login(staff)
    page = text(client.get(f"/centre/tenders/{tender.id}"))
    assert "Colour?" in page and "Not paid" in page
    response = client.post(
        f"/centre/enquiries/{enquiry.id}/answer", data={f"enquiry-{enquiry.id}-answer": "Oak."}
    )
    assert response.status_code == 302
    prefix = f"registration-{registration.id}"
    response = client.post(
        f"/centre/registrations/{registration.id}/bonds",
        data={f"{prefix}-kind": "payment", f"{prefix}-amount": "1.234", f"{prefix}-reference": "x"},
    )
    assert response.status_code == 400
    response = client.post(
        f"/centre/registrations/{registration.id}/bonds",
        data={
            f"{prefix}-kind": "guarantee",
            f"{prefix}-amount": "10000.00",
            f"{prefix}-reference": "BG-77",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Enquiry, enquiry.id).answer == "Oak."
    bond = db.session.scalar(select(BondRecord))
    assert bond.amount == Decimal("10000.00") and bond.kind == "guarantee"
    assert "Paid" in text(client.get(f"/centre/tenders/{tender.id}"))


# --- attachments ---------------------------------------------------------------------------

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def upload(client, tender, data: bytes, filename: str, content_type: str):
    return client.post(
        f"/centre/tenders/{tender.id}/attachments",
        data={"file": (io.BytesIO(data), filename, content_type), "title": "Drawings"},
        content_type="multipart/form-data",
    )


def test_attachment_upload(app, client, draft):
    response = upload(client, draft, PDF, "drawings.pdf", "application/pdf")
    assert response.status_code == 302, text(response)[:2000]
    document = db.session.scalar(select(TenderDocument).where(TenderDocument.kind == "attachment"))
    assert document.sha256 == hashlib.sha256(PDF).hexdigest()
    assert document.content_type == "application/pdf" and document.title == "Drawings"
    assert document.sha256 in text(client.get(f"/centre/tenders/{draft.id}"))
    with client.get(f"/centre/documents/{document.id}") as download:
        assert download.get_data() == PDF


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "status", "message"),
    [
        (b"MZ\x90\x00" + b"\x00" * 200, "drawings.pdf", "application/pdf", 400, "does not match"),
        (PDF, "drawings.pdf", "text/html", 400, "was sent as text/html"),
        (b"<html><script>x</script></html>", "bill.csv", "text/csv", 400, "does not match"),
        (PDF, "setup.exe", "application/octet-stream", 400, "are not accepted"),
        (PDF + b"x" * 2048, "big.pdf", "application/pdf", 413, "larger than the limit"),
    ],
)
def test_refused_attachments_store_nothing(
    app, client, draft, monkeypatch, data, filename, content_type, status, message
):
    monkeypatch.setitem(app.config, "MAX_ATTACHMENT_SIZE", 1024)
    before = blob_files(app)
    response = upload(client, draft, data, filename, content_type)
    assert response.status_code == status
    assert message in text(response)
    assert db.session.scalar(select(func.count(TenderDocument.id))) == 0
    assert blob_files(app) == before


# --- who may do what -------------------------------------------------------------------------


def test_supervisor_reads_but_does_not_act(client, auth, centre, make_tender, make_user, builtins):
    tender = make_tender(centre=centre, status="draft")
    supervisor = make_user(Role.SUPERVISOR)
    auth.login(supervisor)
    page = client.get(f"/centre/tenders/{tender.id}")
    assert page.status_code == 200
    assert 'name="code"' not in text(page) and 'name="reason"' not in text(page)
    assert client.get("/centre/tenders/").status_code == 200
    assert client.get("/centre/templates/").status_code == 200
    assert client.get(f"/centre/templates/{builtins['goods'].id}").status_code == 200
    assert client.post(f"/centre/tenders/{tender.id}/publish", data={"code": "1"}).status_code == (
        403
    )
    assert client.post(f"/centre/tenders/{tender.id}/cancel", data={"reason": "x"}).status_code == (
        403
    )
    assert client.get(f"/centre/tenders/new?version={builtins['goods'].latest.id}").status_code == (
        403
    )
    assert client.post("/centre/templates/preview", data={"yaml_text": "a: 1"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).status == "draft"


def test_staff_of_another_centre_is_refused(
    client, auth, centre, make_centre, make_tender, make_user
):
    tender = make_tender(centre=centre)
    other = make_user(Role.STAFF, centre=make_centre())
    auth.login(other)
    assert client.get(f"/centre/tenders/{tender.id}").status_code == 403
    assert client.post(f"/centre/tenders/{tender.id}/cancel", data={"reason": "x"}).status_code == (
        403
    )
    template_id = tender.template_version.template_id
    assert client.get(f"/centre/templates/{template_id}").status_code == 403
    assert tender.reference not in text(client.get("/centre/tenders/"))
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).status == "published"


def test_admin_acts_for_any_centre_in_any_language(
    app, client, auth, centre, make_user, builtins, custodians
):
    admin = make_user(Role.ADMIN)
    auth.login(admin)
    client.set_cookie("fairbid_lang", "ko")
    version = builtins["services"].latest
    page = client.get(f"/centre/tenders/new?version={version.id}")
    assert page.status_code == 200 and 'name="centre_id"' in text(page)
    response = create_tender(
        client, app, version, custodians, centre_id=str(centre.id), reference="ADM-1"
    )
    assert response.status_code == 302, text(response)[:2000]
    tender = db.session.scalar(select(Tender).where(Tender.reference == "ADM-1"))
    assert tender.centre_id == centre.id and tender.created_by_id == admin.id
    assert client.get(f"/centre/tenders/{tender.id}").status_code == 200
    response = client.post(
        f"/centre/templates/{builtins['goods'].id}/copy",
        data={"key": "goods-admin", "centre_id": str(centre.id)},
    )
    assert response.status_code == 302
    assert db.session.scalar(
        select(TenderTemplate).where(
            TenderTemplate.centre_id == centre.id, TenderTemplate.key == "goods-admin"
        )
    )


def test_custodians_of_another_centre_are_refused(
    app, staff, centre, builtins, custodians, make_user, make_centre
):
    """The form offers only the centre's people; the operation refuses others (e.g. via API)."""
    from app.core.errors import OperationError
    from app.tenders.operations import LotInput, TenderInput, create_tender

    outsider = make_user(Role.CUSTODIAN, centre=make_centre())
    now = utcnow()
    data = TenderInput(
        reference="X-1",
        title="Desks",
        publication_at=now,
        enquiry_deadline=now + timedelta(days=10),
        submission_deadline=now + timedelta(days=21),
        opening_at=now + timedelta(days=21),
        lots=[LotInput("Desks", ceiling_price=Decimal("100.00"))],
        custodian_ids=[custodians[0].id, outsider.id],
        custodian_threshold=2,
    )
    with app.test_request_context(), pytest.raises(OperationError, match="tender's centre"):
        create_tender(staff, centre.id, builtins["goods"].latest, data)
    db.session.rollback()
    assert tender_count() == 0


@pytest.mark.parametrize("amount", ["1.5e3", "1e6", "NaN", "-5", "12,34.5x"])
def test_money_in_odd_notations_is_refused(app, client, auth, staff, builtins, custodians, amount):
    auth.login(staff)
    response = create_tender(client, app, builtins["goods"].latest, custodians, budget=amount)
    assert response.status_code == 400
    assert tender_count() == 0
