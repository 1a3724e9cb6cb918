"""Sealed bids: the bid page, envelope uploads (multipart, resumable, API), receipts and
withdrawal are the walk's bidder's only (its company is approved and registered for the
walk's tender; the walk's bid and upload session are its company's). The platform's
receipt key and sealing records are public."""

from tests.app.expectations import PUBLIC

BIDDER = frozenset({"bidder"})

EXPECTED = {
    "bids.index": BIDDER,
    "bids.tender": BIDDER,
    "bids.submit_envelope": BIDDER,
    "bids.start_upload": BIDDER,
    "bids.upload_chunk": BIDDER,
    "bids.upload_status": BIDDER,
    "bids.withdraw": BIDDER,
    "bids.receipt": BIDDER,
    "api.platform_receipt_key": PUBLIC,
    "api.sealing_record": PUBLIC,
    "api.submit_bid": BIDDER,
    "api.my_bids": BIDDER,
    "api.withdraw_bid": BIDDER,
    "api.bid_receipt": BIDDER,
    "api.start_upload": BIDDER,
    "api.upload_chunk": BIDDER,
    "api.upload_status": BIDDER,
}
