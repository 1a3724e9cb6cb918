"""A published tender's lots change only through an addendum (with the addendum's deadline
rule): lots added, cancelled, re-priced. A lot cancelled before the deadline takes no new
envelope (nothing stored); the envelopes it received are kept unopened and reported at the
opening, the other lots proceed."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.bids.models import Bid, BidStatus
from app.bids.operations import sealing_record_of
from app.core.types import utcnow
from app.evaluations.scoring_file import several_lots
from app.extensions import db
from app.opening import operations as opening_ops
from app.opening.models import OpeningLine
from app.tenders.documents import blob_store, open_document
from app.tenders.models import Addendum, Lot, Tender, TenderRegistration, TenderStatus
from bidding import envelope as envelopes
from bidding import merkle
from tests.factories.accounts import token_for
from tests.factories.bids import public_key, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, staff_of, start, unlock


@pytest.fixture
def tender(make_tender):
    """Published, real key ceremony, three lots (1, 2, 3), deadline 20 days away."""
    tender = make_tender()
    db.session.add_all(
        [
            Lot(tender_id=tender.id, number=2, title="Lot 2", ceiling_price=Decimal("500.00")),
            Lot(tender_id=tender.id, number=3, title="Lot 3", ceiling_price=Decimal("700.00")),
        ]
    )
    db.session.commit()
    db.session.refresh(tender)
    return tender


def addendum(client, tender, changes, **extra):
    return client.post(
        f"/api/v1/tenders/{tender.id}/addenda",
        json={"title": "Lots", "body": "The lots change.", "lot_changes": changes, **extra},
        headers=token_for(staff_of(tender)),
    )


def lot_bidder(make_user, tender, lots: list[str]):
    user = make_user(Role.BIDDER)
    registration = TenderRegistration(
        tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
    )
    registration.lots = [tender.lot_by_reference(ref) for ref in lots]
    db.session.add(registration)
    db.session.commit()
    return user


def seal_for(tender, user, lot: str, price: str = "100.00") -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    out = io.BytesIO()
    parts = envelopes.bid_parts({"price": price}, io.BytesIO(b"proposal"))
    envelopes.seal(out, key, tid(tender), uscc(user), parts, lot=lot)
    return out.getvalue()


def blob_files() -> set[Path]:
    root = blob_store().root
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_lots_change_after_publication_only_through_an_addendum(client, auth, tender):
    headers = token_for(staff_of(tender))
    # The draft's editing is closed: a published tender's lots do not change by PATCH.
    patched = client.patch(
        f"/api/v1/tenders/{tender.id}",
        json={"lots": [{"title": "Only one lot"}]},
        headers=headers,
    )
    assert patched.status_code == 409 and patched.json["error"] == "not_draft"
    assert len(db.session.get(Tender, tender.id).lots) == 3

    # Five days before the deadline: the addendum's deadline rule moves it (15 days).
    tender.submission_deadline = utcnow() + timedelta(days=5)
    tender.opening_at = tender.submission_deadline + timedelta(hours=1)
    db.session.commit()
    before = tender.submission_deadline
    response = addendum(
        client,
        tender,
        [
            {"action": "change", "lot": "1", "ceiling_price": "900000.00", "quantity": "40 t"},
            {"action": "cancel", "lot": "3"},
            {
                "action": "add",
                "new_lot": {
                    "reference": "D",
                    "title": "Lot D",
                    "ceiling_price": "300.00",
                    "bid_bond_amount": "5.00",
                },
            },
        ],
    )
    assert response.status_code == 201, response.json
    changes = response.json["addendum"]["lot_changes"]
    assert changes == [
        {
            "action": "change",
            "lot": "1",
            "field": "ceiling_price",
            "before": "990000.00",
            "after": "900000.00",
        },
        {"action": "change", "lot": "1", "field": "quantity", "before": "", "after": "40 t"},
        {"action": "cancel", "lot": "3"},
        {
            "action": "add",
            "lot": "D",
            "number": 4,
            "title": "Lot D",
            "quantity": "",
            "ceiling_price": "300.00",
            "reserve_price": None,
            "bid_bond_amount": "5.00",
            "budget": None,
        },
    ]
    deadline = datetime.fromisoformat(response.json["tender"]["submission_deadline"])
    assert deadline > before and deadline >= utcnow() + timedelta(days=15) - timedelta(minutes=1)
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    lots = {lot.reference: lot for lot in tender.lots}
    assert lots["1"].ceiling_price == Decimal("900000.00") and lots["1"].quantity == "40 t"
    assert lots["3"].is_cancelled and not lots["2"].is_cancelled
    stored = db.session.scalar(select(Addendum).where(Addendum.tender_id == tender.id))
    assert lots["3"].cancelled_by_addendum_id == stored.id
    assert (lots["D"].number, lots["D"].ceiling_price) == (4, Decimal("300.00"))
    assert [lot.reference for lot in tender.live_lots] == ["1", "2", "D"]
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "tender.addendum_published")
    )
    assert json.loads(event.data)["lot_changes"] == changes
    # The lots as the API and the staff page show them.
    shown = client.get(f"/api/v1/tenders/{tender.id}", headers=headers).json
    assert [lot["cancelled_at"] is not None for lot in shown["lots"]] == [
        False,
        False,
        True,
        False,
    ]
    public = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-cancelled-lot="3"' in public
    auth.login(staff_of(tender))
    page = client.get(f"/centre/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-lot-change="cancel" data-lot="3"' in page
    assert 'data-lot-change="add" data-lot="D"' in page
    assert 'data-cancelled-lot="3"' in page


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ([{"action": "cancel", "lot": "9"}], "unknown_lot"),
        ([{"action": "cancel", "lot": "2"}, {"action": "cancel", "lot": "2"}], "lot_cancelled"),
        (
            [{"action": "cancel", "lot": lot} for lot in ("1", "2", "3")],
            "last_lot",
        ),
        ([{"action": "change", "lot": "2", "reserve_price": "1.00"}], "reserve"),
        ([{"action": "change", "lot": "2", "ceiling_price": None}], "ceiling"),
        ([{"action": "change", "lot": "2", "ceiling_price": "500.00"}], "lot_change"),
        ([{"action": "change", "lot": "2"}], "lot_change"),
        ([{"action": "add", "new_lot": {"reference": "2", "title": "Again"}}], "lot_reference"),
        ([{"action": "add"}], "lot_change"),
    ],
)
def test_a_refused_lot_change_keeps_nothing(client, tender, changes, code):
    tender.template_version.yaml_text = "key: t\ncompliance:\n  ceiling_price_required: true\n"
    tender.submission_deadline = utcnow() + timedelta(days=5)
    db.session.commit()
    before = tender.submission_deadline
    response = addendum(client, tender, changes)
    assert response.status_code == 400, response.json
    assert response.json["error"] == code
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    assert not tender.addenda and tender.submission_deadline == before
    assert [lot.reference for lot in tender.live_lots] == ["1", "2", "3"]
    assert [lot.ceiling_price for lot in tender.lots][1] == Decimal("500.00")


def test_a_tender_of_one_lot_cannot_gain_lots_after_publication(client, make_tender):
    tender = make_tender()
    response = addendum(
        client, tender, [{"action": "add", "new_lot": {"reference": "B", "title": "B"}}]
    )
    assert response.status_code == 400 and response.json["error"] == "no_lots"
    assert db.session.scalar(select(func.count()).select_from(Lot)) == 1


def test_a_cancelled_lot_refuses_new_envelopes_and_stores_nothing(client, tender, make_user):
    bidder = lot_bidder(make_user, tender, ["1", "2"])
    kept = submit(tender, bidder, seal_for(tender, bidder, "2"))
    assert addendum(client, tender, [{"action": "cancel", "lot": "2"}]).status_code == 201
    files, bids = blob_files(), db.session.scalar(select(func.count()).select_from(Bid))
    body = seal_for(tender, bidder, "2", "90.00")
    for query in ("", "?lot=2"):
        response = client.post(
            f"/api/v1/tenders/{tender.id}/bids{query}",
            data=body,
            headers={**token_for(bidder), "Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 409, response.json
        assert response.json["error"] == "lot_cancelled"
        assert "cancelled by an addendum" in response.json["message"]
    assert db.session.scalar(select(func.count()).select_from(Bid)) == bids
    assert blob_files() == files
    assert db.session.get(Bid, kept.id).status == BidStatus.SUBMITTED  # kept, sealed
    # The other lot still takes bids; a new company cannot register for the cancelled one.
    assert submit(tender, bidder, seal_for(tender, bidder, "1")).lot_id == (
        tender.lot_by_reference("1").id
    )
    newcomer = make_user(Role.BIDDER)
    response = client.post(
        f"/api/v1/tenders/{tender.id}/registrations",
        json={"lots": ["1", "2"]},
        headers=token_for(newcomer),
    )
    assert response.status_code == 400 and response.json["error"] == "lot_cancelled"


def test_a_cancelled_lots_envelopes_are_kept_unopened_and_reported(client, tender, make_user):
    everyone = [lot_bidder(make_user, tender, ["1", "2", "3"]) for _ in range(3)]
    for n, user in enumerate(everyone):
        submit(tender, user, seal_for(tender, user, "1", f"10{n}.00"))
        submit(tender, user, seal_for(tender, user, "3", f"30{n}.00"))
    submit(tender, everyone[0], seal_for(tender, everyone[0], "2", "200.00"))
    assert addendum(client, tender, [{"action": "cancel", "lot": "3"}]).status_code == 201
    lot_3 = db.session.get(Tender, tender.id).lot_by_reference("3")
    cancelled_bids = set(db.session.scalars(select(Bid.id).where(Bid.lot_id == lot_3.id)))
    assert len(cancelled_bids) == 3

    past_opening(tender)
    session = start(tender)
    # Lot 2 fails for too few envelopes; lot 3 is not "failed": it was cancelled.
    assert [item["lot"] for item in session.failed_lots] == ["2"]
    for custodian in custodians(tender):
        unlock(tender, custodian)
    tender = db.session.get(Tender, tender.id)
    assert tender.status == TenderStatus.OPENED
    lines = db.session.scalars(select(OpeningLine)).all()
    assert {line.lot_id for line in lines} == {tender.lot_by_reference("1").id}
    assert cancelled_bids.isdisjoint(line.bid_id for line in lines)
    assert all(db.session.get(Bid, bid).status == BidStatus.SUBMITTED for bid in cancelled_bids)

    # The signed opening record reports the cancelled lot and its unopened envelopes.
    with open_document(opening_ops.record_of(tender)) as handle:
        record = json.loads(handle.read())["record"]
    assert record["cancelled_lots"] == [{"lot": "3", "received": 3, "addendum": 1}]
    assert record["failed_lots"] == [{"lot": "2", "received": 1, "min_bids": 3}]
    # The sealing record still seals them, under their lot.
    with open_document(sealing_record_of(tender)) as handle:
        sealing = merkle.verify_sealing_record(handle.read(), None)
    assert sealing.lots.count("3") == 3
    # The evaluation knows no cancelled lot (its envelopes were never opened).
    assert [lot.reference for lot in several_lots(tender)] == ["1", "2"]
    # The public opening page lists it: "lot cancelled, not opened".
    page = client.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-cancelled-lot="3"' in page
    assert "Lots cancelled, not opened" in page


def test_staff_cancel_and_reprice_lots_from_the_addendum_form(client, auth, tender, make_tender):
    auth.login(staff_of(tender))
    page = client.get(f"/centre/tenders/{tender.id}").get_data(as_text=True)
    assert 'name="cancel_lot"' in page and '<option value="3">3: Lot 3</option>' in page
    response = client.post(
        f"/centre/tenders/{tender.id}/addenda",
        data={
            "title": "Lot 3 withdrawn",
            "body": "Lot 3 is cancelled; lot 2's ceiling rises.",
            "cancel_lot": "3",
            "reprice_lot": "2",
            "new_price": "550.00",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    assert tender.lot_by_reference("3").is_cancelled
    assert tender.lot_by_reference("2").ceiling_price == Decimal("550.00")
    assert [c["action"] for c in tender.addenda[0].lot_changes] == ["change", "cancel"]
    page = client.get(f"/centre/tenders/{tender.id}").get_data(as_text=True)
    assert '<option value="3">' not in page  # a cancelled lot is no longer offered
    # Re-pricing with nothing to change is refused, and nothing is kept.
    refused = client.post(
        f"/centre/tenders/{tender.id}/addenda",
        data={"title": "Nothing", "body": "Nothing.", "reprice_lot": "1"},
    )
    assert refused.status_code == 400
    assert "bid bond, budget or quantity" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert len(db.session.get(Tender, tender.id).addenda) == 1
    # A tender of one lot has no lot fields on its addendum form.
    single = make_tender(centre=tender.centre)
    single.created_by_id = tender.created_by_id
    db.session.commit()
    page = client.get(f"/centre/tenders/{single.id}").get_data(as_text=True)
    assert 'name="cancel_lot"' not in page and 'name="title"' in page
