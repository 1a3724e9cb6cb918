"""In a real browser: a bidder seals a bid on the bid page (the published sealing script,
loaded with Subresource Integrity), uploads it with visible progress and gets a receipt;
replaces it, withdraws it, and is refused after the deadline with the server time. The
custodians' shares then open the last envelope in Python: it holds what was typed."""

from __future__ import annotations

import itertools
import json
import os
from datetime import timedelta
from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import select

from app.accounts import security
from app.accounts.models import Role, User
from app.bids import sealing_script
from app.bids.models import Bid, BidStatus
from app.bids.operations import bidder_id
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.types import utcnow
from app.custody.operations import create_custodian_key, envelope_tender_id, run_key_ceremony
from app.extensions import db
from app.tenders.documents import blob_store
from app.tenders.models import (
    Lot,
    Tender,
    TenderCustodian,
    TenderRegistration,
)
from app.tenders.operations import template_document
from app.tenders.template_ops import sync_builtin_templates
from bidding.envelope import decode_commercial, open_envelope
from tests.factories import CUSTODIAN_PASSPHRASE, PASSWORD, rebuild_tender_key, valid_uscc

MIB = 1 << 20

# Records every text #seal-status shows, so the test sees the progress it went through.
WATCH_STATUS = """() => {
  window.fairbidStatuses = [];
  const status = document.getElementById("seal-status");
  new MutationObserver(() => window.fairbidStatuses.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


_made = itertools.count(1)


def _published_tender(live_app, lots: int = 1) -> dict:
    """A published goods tender with two custodians, its key ceremony done, and a bidder of
    an approved company registered for it (new ones at every call: the live database is
    shared by the session's tests); with ``lots`` > 1, divided into lots (references 1, 2,
    ...), the bidder registered for all of them."""
    n = next(_made)
    with live_app.app_context():
        goods = next(t for t in sync_builtin_templates() if t.key == "goods")
        db.session.flush()
        centre = TradingCentre(code=f"TBS{n}", name=f"Bid Submission Centre {n}", level="city")
        db.session.add(centre)
        db.session.flush()
        company = Company(
            name=f"Sealed Desks {n} Ltd.",
            registration_number=valid_uscc(670000 + n),
            legal_representative="Rep",
            contact_name="Contact",
            contact_phone="+86 571 0000 0000",
            home_centre_id=centre.id,
            status=CompanyStatus.APPROVED,
        )
        db.session.add(company)
        db.session.flush()
        users = {}
        for key, role, extra in [
            ("staff", Role.STAFF, {"centre_id": centre.id}),
            ("custodian1", Role.CUSTODIAN, {"centre_id": centre.id}),
            ("custodian2", Role.CUSTODIAN, {"centre_id": centre.id}),
            ("bidder", Role.BIDDER, {"company_id": company.id}),
        ]:
            user = User(
                email=f"{key}{n}@tbs.example",
                full_name=key.title(),
                role=role,
                password_hash=security.hash_password(PASSWORD),
                email_confirmed_at=utcnow(),
                **extra,
            )
            db.session.add(user)
            db.session.flush()
            if role == Role.CUSTODIAN:
                create_custodian_key(user, CUSTODIAN_PASSPHRASE)
            users[key] = user
        now = utcnow()
        tender = Tender(
            centre_id=centre.id,
            template_version_id=goods.latest.id,
            reference=f"TBS-2026-{n:03d}",
            title="Sealed desks for Binjiang schools",
            category="goods",
            direction="lowest_wins",
            status="published",
            budget=Decimal("900000.00"),
            bid_bond_amount=Decimal("9000.00"),
            publication_at=now,
            enquiry_deadline=now + timedelta(days=15),
            submission_deadline=now + timedelta(days=20),
            opening_at=now + timedelta(days=20, hours=1),
            created_by_id=users["staff"].id,
            published_at=now,
        )
        db.session.add(tender)
        db.session.flush()
        made_lots = [
            Lot(
                tender_id=tender.id,
                number=number,
                title=f"Lot {number}",
                ceiling_price=Decimal("890000.00"),
            )
            for number in range(1, lots + 1)
        ]
        db.session.add_all(made_lots)
        for key in ("custodian1", "custodian2"):
            db.session.add(TenderCustodian(tender_id=tender.id, user_id=users[key].id))
        registration = TenderRegistration(
            tender_id=tender.id, company_id=company.id, registered_by_id=users["bidder"].id
        )
        if lots > 1:
            registration.lots = made_lots
        db.session.add(registration)
        db.session.commit()
        run_key_ceremony(tender, users["staff"])
        db.session.commit()
        return {
            "tender_id": tender.id,
            "bidder_email": users["bidder"].email,
            "fields": template_document(goods.latest)["commercial_fields"],
        }


def _offer(fields: list[dict], price: str, text: str) -> tuple[dict, dict]:
    """What to type in each field, and the commercial JSON it must seal to."""
    typed, expected = {}, {}
    for field in fields:
        key, kind = field["key"], field["type"]
        if kind == "money":
            typed[key] = expected[key] = price
        elif kind == "integer":
            low = int(field.get("min", "1"))
            high = int(field.get("max", str(low + 100)))
            value = min(high, low + 7)
            typed[key], expected[key] = str(value), value
        elif kind == "decimal":
            typed[key] = expected[key] = field.get("min", "1.5")
        elif kind == "date":
            typed[key] = expected[key] = "2027-01-15"
        elif kind == "choice":
            typed[key] = expected[key] = field["choices"][-1]
        else:
            typed[key] = expected[key] = text
    return typed, expected


def _fill(page, fields: list[dict], typed: dict) -> None:
    for field in fields:
        locator = page.locator(f"#commercial-{field['key']}")
        if field["type"] == "choice":
            locator.select_option(typed[field["key"]])
        else:
            locator.fill(typed[field["key"]])


def _seal_and_upload(page) -> dict:
    """Press the button; wait for the receipt; the progress both bars and the status went
    through; the receipt shown."""
    page.evaluate(WATCH_STATUS)
    page.locator("#seal-submit").click()
    page.wait_for_function(
        "() => !document.getElementById('seal-receipt').hidden"
        " || document.getElementById('seal-errors').textContent !== ''",
        timeout=60_000,
    )
    assert page.locator("#seal-errors").inner_text() == ""
    expect(page.locator("#seal-receipt")).to_be_visible()
    expect(page.locator("#seal-progress")).to_have_js_property("value", 100)
    expect(page.locator("#seal-upload-progress")).to_have_js_property("value", 100)
    statuses = page.evaluate("window.fairbidStatuses")
    assert "Sealing… 100%" in statuses, statuses
    assert "Uploading… 100%" in statuses, statuses
    assert any(s.startswith("Uploading… ") and s != "Uploading… 100%" for s in statuses)
    return {
        "sequence": int(page.locator("#seal-receipt").get_attribute("data-sequence")),
        "sha256": page.locator("#seal-receipt-sha256").inner_text().strip(),
        "received_at": page.locator("#seal-receipt-received").get_attribute("datetime"),
    }


def test_seal_in_the_browser_replace_withdraw_and_refused_after_the_deadline(
    live_app, live_server, browser, tmp_path
):
    made = _published_tender(live_app)
    tender_id, fields = made["tender_id"], made["fields"]
    technical_1 = os.urandom(3 * MIB + 12345)
    technical_2 = os.urandom(2 * MIB + 777)
    certificate = b"%PDF-1.7 audited statements " + os.urandom(5000)

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # CSP violations and script errors show as console errors; failed requests (the
    # favicon, the refused late upload) are checked by the test itself.
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and errors.append(m.text)
        ),
    )
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(made["bidder_email"])
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.goto(f"{live_server}/bids/tenders/{tender_id}")

    # The page publishes the sealing script's hash and loads the script with it.
    integrity = sealing_script.integrity()
    expect(page.locator("#sealing-integrity")).to_contain_text(integrity)
    script = page.locator(f"script[src$='/{sealing_script.STATIC_FILENAME}']")
    expect(script).to_have_attribute("integrity", integrity)
    expect(script).to_have_attribute("crossorigin", "anonymous")
    assert page.evaluate("typeof window.FairbidSeal.sealEnvelope") == "function"
    # Nothing typed can be posted: no action, no named input.
    form = page.locator("#seal-form")
    assert form.get_attribute("action") is None and form.get_attribute("method") is None
    assert page.locator("#seal-form [name]").count() == 0
    assert page.locator("#seal-form [data-field]").count() == len(fields)
    assert page.locator("#commercial-price").get_attribute("required") is not None

    # A malformed price is refused in the page; nothing is sent.
    typed, expected = _offer(fields, "812345.60", "Model X-1 desk")
    _fill(page, fields, {**typed, "price": "812,345.60"})
    requests = []
    page.on("request", lambda r: "/uploads" in r.url and requests.append(r.url))
    page.locator("#seal-submit").click()
    expect(page.locator("#seal-errors")).to_contain_text("at most two decimals")
    assert requests == []

    # The first bid: fields and a technical file of a few MiB.
    _fill(page, fields, typed)
    page.locator("#seal-technical").set_input_files(
        {"name": "proposal.pdf", "mimeType": "application/pdf", "buffer": technical_1}
    )
    first = _seal_and_upload(page)
    with live_app.app_context():
        bid = db.session.get(Bid, first["sequence"])
        assert bid.tender_id == tender_id and bid.status == BidStatus.SUBMITTED
        assert first["sha256"] == bid.envelope_sha256
        assert first["received_at"].startswith(bid.received_at.strftime("%Y-%m-%dT%H:%M:%S"))
    row = page.locator(f"#bid-{first['sequence']}")
    expect(row).to_have_attribute("data-bid-status", "submitted")
    expect(row).to_contain_text(first["sha256"])
    # The form is locked after success: "bid received — download the receipt", and the
    # bid's number for this tender (not the platform's sequence).
    expect(page.locator("#seal-commercial [data-field]").first).to_be_disabled()
    expect(page.locator("#seal-submit")).to_be_hidden()
    expect(page.locator("#seal-receipt-download")).to_have_attribute(
        "href", f"/bids/{first['sequence']}/receipt"
    )
    expect(page.locator("#bid-received")).to_contain_text("Your bid no. 1 for this tender")

    # The replacement: another price, another file and one qualification document.
    page.locator("#seal-replace").click()
    typed, expected = _offer(fields, "799999.99", "Model X-2 desk, 北京")
    _fill(page, fields, typed)
    page.locator("#seal-technical").set_input_files(
        {"name": "proposal-v2.pdf", "mimeType": "application/pdf", "buffer": technical_2}
    )
    page.locator("#seal-qualification-2").set_input_files(
        {"name": "statements.pdf", "mimeType": "application/pdf", "buffer": certificate}
    )
    second = _seal_and_upload(page)
    assert second["sequence"] > first["sequence"] and second["sha256"] != first["sha256"]
    expect(page.locator(f"#bid-{first['sequence']}")).to_have_attribute(
        "data-bid-status", "superseded"
    )
    expect(page.locator(f"#bid-{first['sequence']}")).to_contain_text("Replaced")
    expect(page.locator(f"#bid-{second['sequence']}")).to_have_attribute(
        "data-bid-status", "submitted"
    )

    # The withdrawal.
    page.locator(f"#bid-{second['sequence']}").get_by_role(
        "button", name="Withdraw this bid"
    ).click()
    expect(page.locator(f"#bid-{second['sequence']}")).to_have_attribute(
        "data-bid-status", "withdrawn"
    )
    expect(page.locator(f"#bid-{second['sequence']}")).to_contain_text("Withdrawn")

    # After the deadline (moved while the page is open): refused, with the server time.
    _fill(page, fields, _offer(fields, "700000.00", "late")[0])
    with live_app.app_context():
        db.session.get(Tender, tender_id).submission_deadline = utcnow() - timedelta(seconds=1)
        db.session.commit()
    page.locator("#seal-submit").click()
    refusal = page.locator("#seal-errors")
    expect(refusal).to_contain_text("server time is", timeout=60_000)
    expect(refusal).to_contain_text("UTC")
    expect(page.locator("#seal-receipt")).to_be_hidden()
    assert errors == []
    context.close()

    with live_app.app_context():
        tender = db.session.get(Tender, tender_id)
        bids = db.session.scalars(select(Bid).where(Bid.tender_id == tender_id)).all()
        assert [(b.id, b.status) for b in sorted(bids, key=lambda b: b.id)] == [
            (first["sequence"], BidStatus.SUPERSEDED),
            (second["sequence"], BidStatus.WITHDRAWN),
        ]
        last = db.session.get(Bid, second["sequence"])
        private_key = rebuild_tender_key(tender)
        with blob_store().open(last.envelope_sha256) as stored:
            opened = open_envelope(
                stored,
                private_key,
                tmp_path / "opened",
                expected_tender=envelope_tender_id(tender),
                expected_bidder=bidder_id(db.session.get(Company, last.company_id)),
                expected_sha256=last.envelope_sha256,
                fsync=False,
            )
        del opened
        out = tmp_path / "opened"
        commercial = decode_commercial((out / "commercial.json").read_bytes())
        assert commercial == expected
        assert json.loads((out / "commercial.json").read_text())["price"] == "799999.99"
        assert (out / "technical").read_bytes() == technical_2
        qualifications = sorted(p.name for p in out.iterdir() if p.name.startswith("qual"))
        assert len(qualifications) == page_qualifications(tender)
        assert (out / "qualification-2").read_bytes() == certificate
        assert (out / "qualification-1").read_bytes() == b""


def page_qualifications(tender) -> int:
    return len(template_document(tender.template_version).get("qualification_documents") or [])


# The form refuses, before sealing, what the opening would record as malformed
# (bidding/commercial.py): nothing is sealed or sent; the form links the field specification
# that `python -m bidding seal --fields` checks.
def test_the_form_refuses_what_the_opening_would_call_malformed(live_app, live_server, browser):
    made = _published_tender(live_app)
    tender_id, fields = made["tender_id"], made["fields"]
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(made["bidder_email"])
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.goto(f"{live_server}/bids/tenders/{tender_id}")
    requests: list[str] = []
    page.on("request", lambda r: "/uploads" in r.url and requests.append(r.url))
    typed, _ = _offer(fields, "812345.60", "Model X-1 desk")
    text_field = next((f["key"] for f in fields if f["type"] == "text"), None)
    cases = [
        ({"price": "1" + "0" * 30}, "a number of at most 24 characters"),
        ({"price": "\u0668\u0661\u0662.\u0666\u0660"}, "at most two decimals"),
        ({"price": "0.00"}, "must be greater than 0"),
    ]
    if text_field:
        cases.append(({text_field: "desk \u202e evil"}, "direction-override"))
    for change, message in cases:
        _fill(page, fields, {**typed, **change})
        page.locator("#seal-submit").click()
        expect(page.locator("#seal-errors")).to_contain_text(message)
        expect(page.locator("#seal-progress")).to_have_attribute("value", "0")
    assert requests == []
    # The specification the command line takes is linked from the form.
    link = page.locator("#commercial-fields-spec")
    href = link.get_attribute("href")
    assert href == f"/api/v1/tenders/{tender_id}/commercial-fields"
    spec = page.request.get(live_server + href).json()
    assert spec["format"] == "fairbid-commercial-fields/1"
    assert [f["key"] for f in spec["fields"]] == [f["key"] for f in fields]
    context.close()


def test_a_bidder_seals_two_lots_and_sees_two_receipts(live_app, live_server, browser):
    made = _published_tender(live_app, lots=2)
    tender_id, fields = made["tender_id"], made["fields"]
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server + "/accounts/login")
    page.locator("#email").fill(made["bidder_email"])
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.goto(f"{live_server}/bids/tenders/{tender_id}")
    # The lot choice is not posted either: only the sealed envelope leaves the page.
    assert page.locator("#seal-form [name]").count() == 0
    receipts = {}
    for lot, price in (("1", "812345.60"), ("2", "455000.00")):
        if lot != "1":  # the form locks after a bid; the next lot is a deliberate step
            page.locator("#seal-replace").click()
        page.locator("#seal-lot").select_option(lot)
        _fill(page, fields, _offer(fields, price, f"Desk for lot {lot}")[0])
        page.locator("#seal-technical").set_input_files(
            {"name": "proposal.pdf", "mimeType": "application/pdf", "buffer": os.urandom(3 * MIB)}
        )
        receipts[lot] = _seal_and_upload(page)
    for lot, receipt in receipts.items():
        row = page.locator(f"#bid-{receipt['sequence']}")
        expect(row).to_have_attribute("data-bid-status", "submitted")
        expect(row.locator("[data-bid-lot]")).to_have_attribute("data-bid-lot", lot)
        expect(row.get_by_role("link", name="Download receipt")).to_be_visible()
    assert errors == []
    context.close()
    with live_app.app_context():
        tender = db.session.get(Tender, tender_id)
        bids = db.session.scalars(select(Bid).where(Bid.tender_id == tender_id)).all()
        by_lot = {tender.lots[0].id: "1", tender.lots[1].id: "2"}
        assert sorted((by_lot[b.lot_id], b.status, b.id) for b in bids) == [
            ("1", BidStatus.SUBMITTED, receipts["1"]["sequence"]),
            ("2", BidStatus.SUBMITTED, receipts["2"]["sequence"]),
        ]
