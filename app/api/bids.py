"""API: envelope submission (the same envelopes `python -m bidding seal` makes), receipts,
sealing records.

An envelope is the raw request body (`application/octet-stream`), streamed to the blob
store under `MAX_ENVELOPE_SIZE`; nothing of it is held in memory or parsed beyond its
header and framing. The resumable protocol of the bid page is offered here too, for clients
on poor connections.
"""

from __future__ import annotations

import hashlib
import io

from apiflask import Schema
from apiflask.fields import Integer, String
from apiflask.validators import Length, Range
from flask import Response, abort, current_app, request
from sqlalchemy.orm import joinedload

from app.api import auth, bp, roles_required
from app.api.roles import BIDDERS
from app.api.schemas import error_responses
from app.bids import operations
from app.bids.access import own_bid, own_upload
from app.bids.body import request_body
from app.bids.models import Bid, UploadSession
from app.bids.receipts import platform_public_key_pem
from app.bids.responses import (
    client_info,
    receipt_download,
    upload_limit,
    upload_state,
    upload_status_response,
)
from app.core.boundary import transactional
from app.extensions import limiter
from app.tenders.access import visible_tender
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

_ERRORS = {
    400: "Refused: `error` says why (e.g. `wrong_tender`, `wrong_bidder`, `wrong_lot`, "
    "`unknown_lot`, `lot_required`, `malformed_envelope`, `content_range`).",
    403: "Not a bidder, company not approved, or not registered for the tender.",
    404: "No such tender, bid or upload (or not the caller's company's).",
    409: "`deadline_passed` (the message states the server time), `not_open`, "
    "`offset_mismatch` (with `offset`), `not_current`.",
    410: "The upload is gone: start again.",
    413: "Larger than the envelope size limit, or a chunk over 16 MiB.",
    507: "`storage_full`: the platform's storage is full; nothing was received, no receipt. "
    "Try again later.",
}


def _errors(*codes: int) -> dict:
    return error_responses(*codes, texts=_ERRORS)


def _token_key() -> str:
    # Per bearer token: every bidder of an office may share one address.
    header = request.headers.get("Authorization", "") or request.remote_addr or ""
    return "bid-upload:" + hashlib.sha256(header.encode()).hexdigest()[:32]


class SubmitQuery(Schema):
    lot = String(
        load_default=None,
        validate=Length(min=1, max=32),
        metadata={
            "description": "A tender divided into lots: the lot the envelope is for (its "
            "header must name the same lot, else 400 `wrong_lot`)."
        },
    )


class UploadIn(Schema):
    size = Integer(
        required=True,
        strict=True,
        validate=Range(min=1),
        metadata={"description": "The envelope's exact size in bytes."},
    )


@bp.get("/platform/receipt-key.pem")
@bp.doc(
    summary="The platform's receipt key (public)",
    description="Ed25519 public key (PEM) that signs receipts and sealing records: "
    "`python -m bidding verify-receipt RECEIPT.json --platform-key receipt-key.pem`.",
)
def platform_receipt_key() -> Response:
    response = Response(platform_public_key_pem(), mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = 'attachment; filename="receipt-key.pem"'
    return response


@bp.post("/tenders/<int:tender_id>/bids")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@limiter.limit(upload_limit, key_func=_token_key)
@bp.input(SubmitQuery, location="query", arg_name="query")
@bp.doc(
    summary="Submit a sealed envelope (bidders registered for the tender)",
    description="The body is the envelope file made by `python -m bidding seal` (or the "
    "bid page), as `application/octet-stream`. Checked without any key (header, tender id "
    "`T<tender id>`, bidder id = the company's unified social credit code, sizes, chunk "
    "framing), stored with fsync, then receipted: 201 with the bid and its signed receipt. "
    "A previous current bid of the company is replaced (kept, marked superseded). In a "
    "tender divided into lots the envelope's header names its lot (`python -m bidding seal "
    "--lot REF`): the company must have registered for it (403 `lot_not_registered`; "
    "`unknown_lot`, `lot_required`: 400), and one bid per lot is current.",
    responses=_errors(400, 403, 404, 409, 413, 507),
)
@transactional
def submit_bid(tender_id: int, query: dict) -> tuple[dict, int]:
    # The lots with the tender: the envelope's checks ask whether it has several.
    tender = visible_tender(auth.current_user, tender_id, (joinedload(Tender.lots),))
    limit = current_app.config["MAX_ENVELOPE_SIZE"]
    request.max_content_length = limit + 1  # the blob store enforces the exact cap
    if (request.content_length or 0) > limit:
        raise operations.too_large(limit)
    bid = operations.submit_envelope(
        auth.current_user, tender, request_body(), lot=query["lot"], **client_info()
    )
    data = operations.bid_data(bid)
    return {"bid": data, "receipt": data["receipt"]}, 201


@bp.get("/tenders/<int:tender_id>/bids/mine")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="The caller's company's bids for a tender, with receipts",
    description="Newest first, every status (submitted, superseded, withdrawn).",
    responses=_errors(403, 404),
)
def my_bids(tender_id: int) -> dict:
    tender = visible_tender(auth.current_user, tender_id)
    bids = operations.company_bids(auth.current_user, tender)
    return {"bids": [operations.bid_data(bid) for bid in bids]}


@bp.post("/bids/<int:bid_id>/withdraw")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="Withdraw the company's current bid (before the deadline)",
    responses=_errors(403, 404, 409),
)
@transactional
def withdraw_bid(bid_id: int) -> dict:
    bid = own_bid(auth.current_user, bid_id)
    operations.withdraw_bid(auth.current_user, bid)
    return {"bid": operations.bid_data(bid)}


@bp.get("/bids/<int:bid_id>/receipt")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="A bid's signed receipt, as the file a bidder keeps",
    responses=_errors(403, 404),
)
def bid_receipt(bid_id: int) -> Response:
    return receipt_download(own_bid(auth.current_user, bid_id))


@bp.get("/tenders/<int:tender_id>/sealing-record")
@bp.doc(
    summary="The tender's sealing record (public once the bids are sealed)",
    description="Signed Merkle root over the envelopes' SHA-256 at the deadline: "
    "`python -m bidding verify-inclusion RECEIPT.json SEALING_RECORD.json`.",
    responses={404: "Not sealed yet, or no such published tender."},
)
def sealing_record(tender_id: int) -> Response:
    tender = visible_tender(auth.current_user, tender_id)
    document = operations.sealing_record_of(tender)
    if document is None:
        abort(404)
    with open_document(document) as stream:
        data = stream.read()  # small: 65 bytes per envelope
    return send_document(document, io.BytesIO(data))


# Resumable uploads ------------------------------------------------------------------------


def _upload_state(upload: UploadSession, offset: int = 0, bid: Bid | None = None) -> dict:
    return upload_state(upload, "api.upload_chunk", offset, bid)


@bp.post("/tenders/<int:tender_id>/uploads")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@limiter.limit(upload_limit, key_func=_token_key)
@bp.input(UploadIn, arg_name="body")
@bp.doc(
    summary="Start a resumable envelope upload",
    description="Then PUT the envelope's bytes to `url` in order, each chunk with "
    "`Content-Range: bytes FIRST-LAST/SIZE` (at most 16 MiB); GET `url` for the offset to "
    "resume from. The last chunk's response carries the receipt.",
    responses=_errors(400, 403, 404, 409, 413),
)
@transactional
def start_upload(tender_id: int, body: dict) -> tuple[dict, int]:
    tender = visible_tender(auth.current_user, tender_id)
    upload = operations.start_upload(auth.current_user, tender, body["size"])
    return _upload_state(upload), 201


@bp.put("/bids/uploads/<session_id>")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="Append a chunk to a resumable upload",
    responses=_errors(400, 403, 404, 409, 410, 413, 507),
)
# Committed before the answer leaves: the last chunk's receipt is for a stored bid.
@transactional
def upload_chunk(session_id: str) -> dict:
    upload = own_upload(auth.current_user, session_id)
    progress = operations.append_chunk(
        auth.current_user,
        upload,
        request.headers.get("Content-Range"),
        request.stream,
        **client_info(),
    )
    return _upload_state(upload, progress.offset, progress.bid)


@bp.get("/bids/uploads/<session_id>")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(summary="Where a resumable upload stands", responses=_errors(403, 404, 410))
def upload_status(session_id: str) -> Response:
    upload = own_upload(auth.current_user, session_id)
    progress = operations.upload_progress(auth.current_user, upload)
    return upload_status_response(_upload_state(upload, progress.offset, progress.bid))
