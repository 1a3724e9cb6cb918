"""Lots (issue 14, first app steps): staff define lots and the tender's lot rules; bidders
register for lots; each envelope names its lot in its header; one current bid per company
per lot; refusals for an unknown lot, a lot not registered for, or a mismatch store nothing.
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.bids import operations
from app.bids.models import Bid, BidStatus
from app.custody.models import TenderKey
from app.extensions import db
from app.tenders.documents import blob_store
from app.tenders.models import Lot, TenderRegistration
from app.tenders.template_ops import sync_builtin_templates
from bidding import envelope as envelopes
from bidding import keys
from tests.factories.accounts import token_for
from tests.factories.bids import tid, uscc
from tests.factories.tenders import create


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def blob_files() -> set[Path]:
    root = blob_store().root
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def seal(key, tender, user, lot: str | None, price: str = "100.00") -> bytes:
    out = io.BytesIO()
    parts = envelopes.bid_parts({"price": price}, io.BytesIO(b"proposal"))
    envelopes.seal(out, key.public_key(), tid(tender), uscc(user), parts, lot=lot)
    return out.getvalue()


def submit(client, tender, user, body: bytes, lot: str | None = None):
    query = f"?lot={lot}" if lot is not None else ""
    return client.post(
        f"/api/v1/tenders/{tender.id}/bids{query}",
        data=body,
        headers={**token_for(user), "Content-Type": "application/octet-stream"},
    )


@pytest.fixture
def tender_key():
    return keys.generate_tender_key()


@pytest.fixture
def lots_tender(make_tender, tender_key):
    """A published tender of three lots (references 1, B, C), our own key pair."""
    tender = make_tender(keyed=False, max_lots_won=1)
    db.session.add_all(
        [
            Lot(tender_id=tender.id, number=2, reference="B", title="Lot 2"),
            Lot(tender_id=tender.id, number=3, reference="C", title="Lot 3"),
        ]
    )
    public = tender_key.public_key()
    db.session.add(
        TenderKey(
            tender_id=tender.id,
            public_key=keys._public_raw(public).hex(),
            public_key_pem=keys.public_key_to_pem(public).decode(),
            fingerprint=keys.key_fingerprint(public),
            threshold=2,
        )
    )
    db.session.commit()
    db.session.refresh(tender)
    return tender


@pytest.fixture
def bidder(client, make_user, lots_tender):
    """Registered through the API for lots 1 and B (not C)."""
    user = make_user(Role.BIDDER)
    response = client.post(
        f"/api/v1/tenders/{lots_tender.id}/registrations",
        json={"lots": ["1", "B"]},
        headers=token_for(user),
    )
    assert response.status_code == 201, response.json
    assert response.json["lots"] == ["1", "B"]
    return user


def test_one_current_bid_per_company_per_lot(client, lots_tender, bidder, tender_key):
    first = submit(client, lots_tender, bidder, seal(tender_key, lots_tender, bidder, "1"))
    assert first.status_code == 201, first.json
    assert first.json["bid"]["lot"] == "1"
    second = submit(client, lots_tender, bidder, seal(tender_key, lots_tender, bidder, "B"), "B")
    assert second.status_code == 201, second.json
    again = submit(client, lots_tender, bidder, seal(tender_key, lots_tender, bidder, "1", "90"))
    assert again.status_code == 201
    bids = {b.id: b for b in db.session.scalars(select(Bid))}
    lot_1 = lots_tender.lot_by_reference("1").id
    lot_b = lots_tender.lot_by_reference("B").id
    assert bids[first.json["bid"]["id"]].status == BidStatus.SUPERSEDED
    assert bids[second.json["bid"]["id"]].status == BidStatus.SUBMITTED
    current = bids[again.json["bid"]["id"]]
    assert (current.status, current.lot_id, current.supersedes_id) == (
        BidStatus.SUBMITTED,
        lot_1,
        first.json["bid"]["id"],
    )
    # One receipt per envelope; withdrawing lot B's bid leaves lot 1's current.
    withdrawn = client.post(
        f"/api/v1/bids/{second.json['bid']['id']}/withdraw", headers=token_for(bidder)
    )
    assert withdrawn.status_code == 200 and withdrawn.json["bid"]["lot"] == "B"
    live = db.session.scalars(select(Bid).where(Bid.status == BidStatus.SUBMITTED)).all()
    assert [(b.lot_id, b.id) for b in live] == [(lot_1, current.id)]
    assert lot_b != lot_1
    mine = client.get(f"/api/v1/tenders/{lots_tender.id}/bids/mine", headers=token_for(bidder))
    assert [b["lot"] for b in mine.json["bids"]] == ["1", "B", "1"]


def test_envelopes_for_an_unknown_or_unregistered_lot_store_nothing(
    client, lots_tender, bidder, tender_key, make_tender
):
    before = blob_files()
    events = count(AuditEvent)
    cases = [
        ("unknown_lot", 400, seal(tender_key, lots_tender, bidder, "Z"), None),
        ("lot_not_registered", 403, seal(tender_key, lots_tender, bidder, "C"), None),
        ("lot_required", 400, seal(tender_key, lots_tender, bidder, None), None),
        ("wrong_lot", 400, seal(tender_key, lots_tender, bidder, "1"), "B"),
        ("unknown_lot", 400, seal(tender_key, lots_tender, bidder, "Z"), "Z"),
    ]
    for code, status, body, lot in cases:
        response = submit(client, lots_tender, bidder, body, lot)
        assert (response.status_code, response.json["error"]) == (status, code), response.json
    assert count(Bid) == 0
    assert count(AuditEvent, AuditEvent.action == operations.RECEIVED) == 0
    assert count(AuditEvent) == events + len(cases)  # only the token uses
    assert blob_files() == before


def test_a_tender_of_one_lot_refuses_an_envelope_naming_a_lot(
    client, make_tender, make_user, tender_key
):
    tender = make_tender(keyed=False)
    public = tender_key.public_key()
    db.session.add(
        TenderKey(
            tender_id=tender.id,
            public_key=keys._public_raw(public).hex(),
            public_key_pem=keys.public_key_to_pem(public).decode(),
            fingerprint=keys.key_fingerprint(public),
            threshold=2,
        )
    )
    db.session.commit()
    user = make_user(Role.BIDDER)
    url = f"/api/v1/tenders/{tender.id}/registrations"
    refused = client.post(url, json={"lots": ["1"]}, headers=token_for(user))
    assert refused.status_code == 400 and refused.json["error"] == "no_lots"
    assert client.post(url, headers=token_for(user)).status_code == 201
    response = submit(client, tender, user, seal(tender_key, tender, user, "1"))
    assert (response.status_code, response.json["error"]) == (400, "wrong_lot")
    response = submit(client, tender, user, seal(tender_key, tender, user, None), "1")
    assert (response.status_code, response.json["error"]) == (400, "no_lots")
    assert count(Bid) == 0
    assert submit(client, tender, user, seal(tender_key, tender, user, None)).status_code == 201


def test_registration_names_lots_and_owes_their_bonds(client, make_user, lots_tender):
    lots_tender.lot_by_reference("B").bid_bond_amount = Decimal("3000.00")
    db.session.commit()
    url = f"/api/v1/tenders/{lots_tender.id}/registrations"
    user = make_user(Role.BIDDER)
    for body, code in [
        ({}, "lots_required"),
        ({"lots": []}, "lots_required"),
        ({"lots": ["1", "Q"]}, "unknown_lot"),
    ]:
        response = client.post(url, json=body, headers=token_for(user))
        assert (response.status_code, response.json["error"]) == (400, code), body
    assert count(TenderRegistration) == 0
    response = client.post(url, json={"lots": ["B", "1"]}, headers=token_for(user))
    assert response.status_code == 201
    # Lot 1 has no bond of its own: the tender's (10000.00) applies.
    assert response.json["lots"] == ["1", "B"] and response.json["bond_required"] == "13000.00"

    lots_tender.multi_lot_bidding = False
    db.session.commit()
    other = make_user(Role.BIDDER)
    response = client.post(url, json={"lots": ["1", "B"]}, headers=token_for(other))
    assert (response.status_code, response.json["error"]) == (400, "one_lot_only")
    assert client.post(url, json={"lots": ["C"]}, headers=token_for(other)).status_code == 201


def test_registration_form_offers_the_lots(client, auth, make_user, lots_tender):
    user = make_user(Role.BIDDER)
    auth.login(user)
    page = client.get(f"/tenders/{lots_tender.id}").get_data(as_text=True)
    assert 'name="lots" value="B"' in page and 'type="checkbox"' in page
    response = client.post(f"/bidder/tenders/{lots_tender.id}/register", data={"lots": ["C"]})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    registration = db.session.scalar(select(TenderRegistration))
    assert [lot.reference for lot in registration.lots] == ["C"]


@pytest.fixture
def goods_version(app):
    templates = {t.key: t for t in sync_builtin_templates()}
    db.session.commit()
    return templates["goods"].latest


def test_staff_define_lots_and_the_award_rules(client, make_user, make_centre, goods_version):
    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    custodians = [make_user(Role.CUSTODIAN, centre=centre) for _ in range(3)]
    lots = [
        {
            "reference": "A1",
            "title": "Desks",
            "ceiling_price": "500000.00",
            "bid_bond_amount": "5000.00",
            "quantity": "200 desks",
            "description": "Oak",
        },
        {"title": "Chairs", "ceiling_price": "300000.00"},
    ]
    response = create(
        client,
        token_for(staff),
        goods_version,
        custodians,
        lots=lots,
        max_lots_won=1,
        lot_award_rule="max_total_score",
        multi_lot_bidding=True,
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert [lot["reference"] for lot in body["lots"]] == ["A1", "2"]
    assert body["lots"][0]["bid_bond_amount"] == "5000.00"
    assert body["lots"][0]["quantity"] == "200 desks"
    assert (body["max_lots_won"], body["lot_award_rule"]) == (1, "max_total_score")

    headers = token_for(staff)
    before = count(Lot)
    for overrides, status, code in [
        ({"lots": [{**lots[0], "reference": "2"}, lots[1]]}, 400, "lot_reference"),
        ({"lots": [{**lots[0], "reference": "bad ref"}]}, 400, "lot_reference"),
        ({"max_lots_won": 3}, 400, "max_lots_won"),
        ({"max_lots_won": 0}, 422, None),
        ({"lot_award_rule": "cheapest"}, 422, None),
    ]:
        response = create(
            client,
            headers,
            goods_version,
            custodians,
            **{"lots": lots, **overrides},
            reference=f"R-{status}-{code}",
        )
        assert response.status_code == status, (overrides, response.json)
        if code:
            assert response.json["error"] == code
    assert count(Lot) == before


def test_the_bid_page_offers_the_registered_lots_and_lists_bids_by_lot(
    client, auth, lots_tender, bidder, tender_key
):
    assert (
        submit(client, lots_tender, bidder, seal(tender_key, lots_tender, bidder, "B")).status_code
        == 201
    )
    auth.login(bidder)
    page = client.get(f"/bids/tenders/{lots_tender.id}").get_data(as_text=True)
    # (The in-browser sealing form and its lot choice: tests/browser.)
    assert 'data-bid-lot="B"' in page and "--lot 1" in page and "1, B" in page


def test_a_resumable_upload_takes_its_lot_from_the_header(client, lots_tender, bidder, tender_key):
    headers = token_for(bidder)
    for lot, status in (("B", 200), ("C", 403)):
        data = seal(tender_key, lots_tender, bidder, lot)
        started = client.post(
            f"/api/v1/tenders/{lots_tender.id}/uploads", json={"size": len(data)}, headers=headers
        )
        assert started.status_code == 201, started.json
        done = client.put(
            started.json["url"],
            data=data,
            headers={**headers, "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
        )
        assert done.status_code == status, done.json
    bid = db.session.scalar(select(Bid))
    assert count(Bid) == 1 and bid.lot_id == lots_tender.lot_by_reference("B").id
