"""A tender divided into three lots, bid for by three companies, opened and evaluated by the
real operations (the evaluation tests of lots and the records tests use it): `lots_tender`
up to the evaluation's start, `unblinded` through the panel's sheets, `finalised` to the
chair's finalisation (which requests the signed record)."""

from __future__ import annotations

from decimal import Decimal

from app.evaluations import operations
from app.extensions import db
from app.tenders.models import Lot, TenderRegistration
from tests.factories.bids import submit
from tests.factories.evaluations import record_bond, seal_bid, seat_panel, use_goods_template
from tests.factories.opening import open_for_real, staff_of
from tests.factories.scoring import confirm_review, fill_sheet, lock

# Lot 1 keeps the factory's ceiling (990000.00); lots 2 and 3 have their own.
CEILINGS = {"2": Decimal("200000.00"), "3": Decimal("300000.00")}
# company index -> lot -> price; company 0 is the cheapest everywhere it bids.
PRICES = {
    0: {"1": "500000.00", "2": "150000.00", "3": "250000.00"},
    1: {"1": "520000.00", "2": "160000.00", "3": "260000.00"},
    2: {"1": "510000.00", "2": "250000.00", "3": "270000.00"},  # lot 2: over its ceiling
}


def lots_tender(make_tender, make_user, limit: int | None, prices=PRICES):
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
    tender = open_for_real(tender)
    experts = seat_panel(make_user, tender)
    operations.start_evaluation(staff_of(tender), tender, chair=experts[0])
    db.session.commit()
    return tender, bidders, experts


def unblinded(tender, experts):
    confirm_review(tender, experts[0])
    for expert in experts:
        fill_sheet(expert, tender)
        lock(expert, tender)
    evaluation = operations.unblind(experts[0], tender)
    db.session.commit()
    return evaluation


def finalised(tender, experts):
    """`unblinded`, then finalised by the chair (a tie would need `draw_lots` first)."""
    evaluation = unblinded(tender, experts)
    operations.finalise(experts[0], tender)
    db.session.commit()
    return evaluation
