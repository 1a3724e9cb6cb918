"""The opening of a tender divided into lots: one ceremony, one key; the lines grouped by
lot; a lot with fewer than min_bids envelopes fails unopened, the others open; every lot
failing fails the tender."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.bids.models import Bid
from app.bids.receipts import platform_signing_key
from app.extensions import db
from app.opening import operations as ops
from app.opening.models import LineStatus, OpeningLine, OpeningStatus
from app.tenders.documents import open_document
from app.tenders.models import Lot, Tender, TenderRegistration, TenderStatus
from bidding import envelope as envelopes
from bidding import merkle, opening_record, receipts
from bidding.errors import InclusionError
from tests.factories.bids import public_key, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, start, unlock


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


@pytest.fixture
def tender(make_tender):
    tender = make_tender()  # real key ceremony; min_bids 3 (the default)
    db.session.add_all(
        [
            Lot(tender_id=tender.id, number=2, title="Lot 2"),
            Lot(tender_id=tender.id, number=3, title="Lot 3"),
        ]
    )
    db.session.commit()
    db.session.refresh(tender)
    return tender


def lot_bidder(make_user, tender, lots: list[str]):
    user = make_user(Role.BIDDER)
    registration = TenderRegistration(
        tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
    )
    registration.lots = [tender.lot_by_reference(ref) for ref in lots]
    db.session.add(registration)
    db.session.commit()
    return user


def seal_for(tender, user, lot: str, price: str) -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    out = io.BytesIO()
    parts = envelopes.bid_parts({"price": price}, io.BytesIO(b"proposal"))
    envelopes.seal(out, key, tid(tender), uscc(user), parts, lot=lot)
    return out.getvalue()


def test_a_lot_below_min_bids_fails_unopened_and_the_others_open(tender, make_user, client):
    everyone = [lot_bidder(make_user, tender, ["1", "2", "3"]) for _ in range(3)]
    for n, user in enumerate(everyone):
        submit(tender, user, seal_for(tender, user, "1", f"10{n}.00"))
        submit(tender, user, seal_for(tender, user, "2", f"20{n}.00"))
    submit(tender, everyone[0], seal_for(tender, everyone[0], "3", "300.00"))
    lot_3_bid = db.session.scalar(select(Bid).where(Bid.lot_id == tender.lot_by_reference("3").id))
    past_opening(tender)
    session = start(tender)
    assert session.status == OpeningStatus.UNLOCKING
    assert session.failed_lots == [{"lot": "3", "received": 1, "min_bids": 3}]
    failed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "opening.lot_failed"))
    assert json.loads(failed.data)["lot"] == "3"
    for custodian in custodians(tender):
        unlock(tender, custodian)
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED
    lines = db.session.scalars(select(OpeningLine)).all()
    by_lot = {lot.id: lot.reference for lot in tender.lots}
    assert sorted(by_lot[line.lot_id] for line in lines) == ["1"] * 3 + ["2"] * 3
    assert all(line.status == LineStatus.OPENED for line in lines)
    assert lot_3_bid.id not in {line.bid_id for line in lines}  # kept, unopened
    # The signed record names each line's lot and the failed lot.
    with open_document(ops.record_of(tender)) as handle:
        record = json.loads(handle.read())["record"]
    assert record["failed_lots"] == [{"lot": "3", "received": 1, "min_bids": 3}]
    assert sorted(line["lot"] for line in record["lines"]) == ["1"] * 3 + ["2"] * 3
    # The page groups the lines by lot and names the failed lot.
    page = client.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-failed-lot="3"' in page
    lots_in_order = [part.split('"')[0] for part in page.split('data-lot="')[1:]]
    assert lots_in_order == ["1", "1", "1", "2", "2", "2"]


def test_every_lot_below_min_bids_fails_the_tender(tender, make_user):
    user = lot_bidder(make_user, tender, ["1", "2"])
    submit(tender, user, seal_for(tender, user, "1", "1.00"))
    submit(tender, user, seal_for(tender, user, "2", "2.00"))
    past_opening(tender)
    session = start(tender)
    assert session.status == OpeningStatus.FAILED
    assert "lot 3: 0" in session.reason and "lot 1: 1" in session.reason
    assert db.session.get(Tender, tender.id).status == TenderStatus.FAILED
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "tender.failed"))
    assert json.loads(event.data)["received"] == 2


def test_one_sealing_record_over_every_lot_with_receipts_naming_their_lot(
    tender, make_user, client
):
    """The receipts of a tender of lots are version 2 (they name the lot); the sealing record
    is ONE version 2 record whose leaves carry their lot, served by the API; every receipt's
    inclusion verifies, and the opening record's lines match the leaves' lots."""
    everyone = [lot_bidder(make_user, tender, ["1", "2", "3"]) for _ in range(3)]
    for n, user in enumerate(everyone):
        submit(tender, user, seal_for(tender, user, "1", f"10{n}.00"))
        submit(tender, user, seal_for(tender, user, "2", f"20{n}.00"))
    submit(tender, everyone[0], seal_for(tender, everyone[0], "3", "300.00"))
    public = platform_signing_key().public_key()
    bids = db.session.scalars(select(Bid).order_by(Bid.id)).all()
    by_lot = {lot.id: lot.reference for lot in tender.lots}
    issued = [receipts.verify_receipt(bid.receipt, public) for bid in bids]
    assert [r.lot for r in issued] == [by_lot[bid.lot_id] for bid in bids]
    assert {json.loads(bid.receipt)["format"] for bid in bids} == {"fairbid-receipt-v2"}

    past_opening(tender)
    start(tender)
    served = client.get(f"/api/v1/tenders/{tender.id}/sealing-record")
    assert served.status_code == 200
    assert json.loads(served.data)["format"] == "fairbid-sealing-record-v2"
    record = merkle.verify_sealing_record(served.data, public)
    assert record.size == 7
    assert list(record.lots) == ["1", "2"] * 3 + ["3"]
    assert list(record.leaves) == [bid.envelope_sha256 for bid in bids]
    for index, receipt in enumerate(issued):
        assert merkle.verify_receipt_inclusion(receipt, record) == index
    # A receipt re-labelled to another lot does not verify against the record.
    moved = receipts.Receipt(**{**issued[0].to_json(), "lot": "2"})
    with pytest.raises(InclusionError, match="seals this envelope for lot 1"):
        merkle.verify_receipt_inclusion(moved, record)

    for custodian in custodians(tender):
        unlock(tender, custodian)
    with open_document(ops.record_of(tender)) as handle:
        opening_bytes = handle.read()
    body = opening_record.verify_opening_record(opening_bytes, public, served.data)
    assert len(body["lines"]) == 6  # lot 3 failed unopened
