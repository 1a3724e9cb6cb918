"""A tender of three lots taken through the real sealing, opening and evaluation up to the
panel's unblinded result: lot 1 keeps the factory's ceiling (990000.00), lots 2 and 3 have
their own; every company registers for every lot and bids for the lots `prices` gives it.
(The same builder as tests/app/test_evaluation_lots.py's, shared here for the results.)"""

from __future__ import annotations

from decimal import Decimal

from app.evaluations import operations
from app.extensions import db
from app.tenders.models import Lot, Tender, TenderRegistration
from tests.factories.bids import submit
from tests.factories.evaluations import record_bond, seal_bid, seat_panel, use_goods_template
from tests.factories.opening import custodians, past_opening, staff_of, start, unlock
from tests.factories.scoring import confirm_review, fill_sheet, lock

CEILINGS = {"2": Decimal("200000.00"), "3": Decimal("300000.00")}


def lots_tender(make_tender, make_user, limit: int | None, prices: dict[int, dict[str, str]]):
    """(tender, bidders, experts): opened, its evaluation started; `prices` maps a company's
    index to {lot reference: price}."""
    tender = use_goods_template(make_tender())
    db.session.add_all(
        [
            Lot(tender_id=tender.id, number=n, title=f"Lot {n}", ceiling_price=CEILINGS[str(n)])
            for n in (2, 3)
        ]
    )
    tender.max_lots_won = limit
    tender.lot_award_rule = "lot_order"
    db.session.commit()
    db.session.refresh(tender)
    bidders = []
    for _ in prices:
        user = make_user("bidder")
        registration = TenderRegistration(
            tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
        )
        registration.lots = [tender.lot_by_reference(ref) for ref in ("1", "2", "3")]
        db.session.add(registration)
        db.session.commit()
        bidders.append(user)
    for index, user in enumerate(bidders):
        for lot, price in prices[index].items():
            submit(tender, user, seal_bid(tender, user, price, lot=lot))
        record_bond(tender, user)
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    db.session.commit()
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    experts = seat_panel(make_user, tender)
    operations.start_evaluation(staff_of(tender), tender, chair=experts[0])
    db.session.commit()
    return tender, bidders, experts


def unblinded(tender, experts):
    """The review confirmed, every sheet filled and locked, the result unblinded."""
    confirm_review(tender, experts[0])
    for expert in experts:
        fill_sheet(expert, tender)
        lock(expert, tender)
    evaluation = operations.unblind(experts[0], tender)
    db.session.commit()
    return evaluation
