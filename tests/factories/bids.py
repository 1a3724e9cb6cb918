"""Bid builders: a registered bidder, the ids an envelope names, an envelope sealed with
the library, and its submission through the operation."""

from __future__ import annotations

import io

from app.accounts.models import Role
from app.bids import operations as bid_ops
from app.bids.models import Bid
from app.custody.models import TenderKey
from app.extensions import db
from app.tenders.models import TenderRegistration
from bidding import envelope as envelopes


def registered_bidder(make_user, tender, company=None):
    user = make_user(Role.BIDDER, company=company)
    db.session.add(
        TenderRegistration(
            tender_id=tender.id, company_id=user.company_id, registered_by_id=user.id
        )
    )
    db.session.commit()
    return user


def tid(tender) -> str:
    return f"T{tender.id}"


def uscc(user) -> str:
    return user.company.registration_number


def lib_seal(public_key, tender_id, bidder_id, price="100.00", technical=b"proposal", **extra):
    out = io.BytesIO()
    parts = envelopes.bid_parts({"price": price, **extra}, io.BytesIO(technical))
    envelopes.seal(out, public_key, tender_id, bidder_id, parts)
    return out.getvalue()


def public_key(tender):
    return bytes.fromhex(db.session.get(TenderKey, tender.id).public_key)


def submit(tender, bidder, body: bytes) -> Bid:
    bid = bid_ops.submit_envelope(bidder, tender, io.BytesIO(body))
    db.session.commit()
    return bid
