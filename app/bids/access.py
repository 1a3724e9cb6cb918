"""A bidder's own bids and upload sessions, for the bid page and the API alike: another
company's do not exist for them (404)."""

from __future__ import annotations

from flask import abort

from app.accounts.models import User
from app.bids import operations
from app.bids.models import Bid, UploadSession


def own_bid(user: User, bid_id: int) -> Bid:
    bid = operations.bid_of_company(user, bid_id)
    if bid is None:
        abort(404)
    return bid


def own_upload(user: User, session_id: str) -> UploadSession:
    upload = operations.upload_of_company(user, session_id)
    if upload is None:
        abort(404)
    return upload
