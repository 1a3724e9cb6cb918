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
from apiflask.fields import Integer
from apiflask.validators import Range
from flask import Response, abort, current_app, jsonify, request, url_for

from app.api import auth, bp, roles_required
from app.api.roles import BIDDERS
from app.bids import operations
from app.bids.receipts import platform_public_key_pem
from app.core.errors import OperationError
from app.extensions import db, limiter
from app.tenders import participation
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

_ERRORS = {
    400: "Refused: `error` says why (e.g. `wrong_tender`, `wrong_bidder`, "
    "`malformed_envelope`, `content_range`).",
    403: "Not a bidder, company not approved, or not registered for the tender.",
    404: "No such tender, bid or upload (or not the caller's company's).",
    409: "`deadline_passed` (the message states the server time), `not_open`, "
    "`offset_mismatch` (with `offset`), `not_current`.",
    410: "The upload is gone: start again.",
    413: "Larger than the envelope size limit, or a chunk over 16 MiB.",
}


def _errors(*codes: int) -> dict:
    return {code: _ERRORS[code] for code in codes}


def _upload_limit() -> str:
    return current_app.config["RATELIMIT_BID_UPLOAD"]


def _token_key() -> str:
    # Per bearer token: every bidder of an office may share one address.
    header = request.headers.get("Authorization", "") or request.remote_addr or ""
    return "bid-upload:" + hashlib.sha256(header.encode()).hexdigest()[:32]


class UploadIn(Schema):
    size = Integer(
        required=True,
        validate=Range(min=1),
        metadata={"description": "The envelope's exact size in bytes."},
    )


def _tender(tender_id: int) -> Tender:
    tender = db.session.get(Tender, tender_id)
    if tender is None or not participation.can_see_tender(auth.current_user, tender):
        abort(404)
    return tender


def _client() -> dict:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string or ""}


def _error(error: OperationError):
    db.session.rollback()
    body = {"status": error.status, "error": error.code, "message": str(error.message)}
    if isinstance(error, operations.OffsetMismatch):
        body["offset"] = error.offset
    return jsonify(body), error.status


@bp.get("/platform/receipt-key.pem")
@bp.doc(
    summary="The platform's receipt key (public)",
    description="Ed25519 public key (PEM) that signs receipts and sealing records: "
    "`python -m bidding verify-receipt RECEIPT.json --platform-key receipt-key.pem`.",
)
def platform_receipt_key():
    response = Response(platform_public_key_pem(), mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = 'attachment; filename="receipt-key.pem"'
    return response


@bp.post("/tenders/<int:tender_id>/bids")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@limiter.limit(_upload_limit, key_func=_token_key)
@bp.doc(
    summary="Submit a sealed envelope (bidders registered for the tender)",
    description="The body is the envelope file made by `python -m bidding seal` (or the "
    "bid page), as `application/octet-stream`. Checked without any key (header, tender id "
    "`T<tender id>`, bidder id = the company's unified social credit code, sizes, chunk "
    "framing), stored with fsync, then receipted: 201 with the bid and its signed receipt. "
    "A previous current bid of the company is replaced (kept, marked superseded).",
    responses=_errors(400, 403, 404, 409, 413),
)
def submit_bid(tender_id: int):
    tender = _tender(tender_id)
    limit = current_app.config["MAX_ENVELOPE_SIZE"]
    request.max_content_length = limit + 1  # the blob store enforces the exact cap
    try:
        if (request.content_length or 0) > limit:
            raise operations.too_large(limit)
        bid = operations.submit_envelope(auth.current_user, tender, request.stream, **_client())
    except OperationError as error:
        return _error(error)
    db.session.commit()
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
def my_bids(tender_id: int):
    tender = _tender(tender_id)
    bids = operations.company_bids(auth.current_user, tender)
    return {"bids": [operations.bid_data(bid) for bid in bids]}


def _own_bid(bid_id: int):
    bid = operations.bid_of_company(auth.current_user, bid_id)
    if bid is None:
        abort(404)
    return bid


@bp.post("/bids/<int:bid_id>/withdraw")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="Withdraw the company's current bid (before the deadline)",
    responses=_errors(403, 404, 409),
)
def withdraw_bid(bid_id: int):
    bid = _own_bid(bid_id)
    try:
        operations.withdraw_bid(auth.current_user, bid)
    except OperationError as error:
        return _error(error)
    db.session.commit()
    return {"bid": operations.bid_data(bid)}


@bp.get("/bids/<int:bid_id>/receipt")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="A bid's signed receipt, as the file a bidder keeps",
    responses=_errors(403, 404),
)
def bid_receipt(bid_id: int):
    bid = _own_bid(bid_id)
    response = Response(bid.receipt, mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="receipt-T{bid.tender_id}-{bid.id}.json"'
    )
    return response


@bp.get("/tenders/<int:tender_id>/sealing-record")
@bp.doc(
    summary="The tender's sealing record (public once the bids are sealed)",
    description="Signed Merkle root over the envelopes' SHA-256 at the deadline: "
    "`python -m bidding verify-inclusion RECEIPT.json SEALING_RECORD.json`.",
    responses={404: "Not sealed yet, or no such published tender."},
)
def sealing_record(tender_id: int):
    tender = _tender(tender_id)
    document = operations.sealing_record_of(tender)
    if document is None:
        abort(404)
    with open_document(document) as stream:
        data = stream.read()  # small: 65 bytes per envelope
    return send_document(document, io.BytesIO(data))


# Resumable uploads ------------------------------------------------------------------------


def _session_json(upload, offset: int, bid=None) -> dict:
    data = {
        "id": upload.id,
        "url": url_for("api.upload_chunk", session_id=upload.id),
        "offset": offset,
        "size": upload.declared_size,
        "chunk_size": current_app.config["UPLOAD_CHUNK_SIZE"],
        "complete": bid is not None,
    }
    if bid is not None:
        data["bid"] = operations.bid_data(bid)
        data["receipt"] = data["bid"]["receipt"]
    return data


@bp.post("/tenders/<int:tender_id>/uploads")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@limiter.limit(_upload_limit, key_func=_token_key)
@bp.input(UploadIn, arg_name="body")
@bp.doc(
    summary="Start a resumable envelope upload",
    description="Then PUT the envelope's bytes to `url` in order, each chunk with "
    "`Content-Range: bytes FIRST-LAST/SIZE` (at most 16 MiB); GET `url` for the offset to "
    "resume from. The last chunk's response carries the receipt.",
    responses=_errors(400, 403, 404, 409, 413),
)
def start_upload(tender_id: int, body):
    tender = _tender(tender_id)
    try:
        upload = operations.start_upload(auth.current_user, tender, body["size"])
    except OperationError as error:
        return _error(error)
    db.session.commit()
    return _session_json(upload, 0), 201


def _own_upload(session_id: str):
    upload = operations.upload_of_company(auth.current_user, session_id)
    if upload is None:
        abort(404)
    return upload


@bp.put("/bids/uploads/<session_id>")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="Append a chunk to a resumable upload",
    responses=_errors(400, 403, 404, 409, 410, 413),
)
def upload_chunk(session_id: str):
    upload = _own_upload(session_id)
    try:
        progress = operations.append_chunk(
            auth.current_user,
            upload,
            request.headers.get("Content-Range"),
            request.stream,
            **_client(),
        )
    except OperationError as error:
        return _error(error)
    db.session.commit()
    return _session_json(upload, progress.offset, progress.bid)


@bp.get("/bids/uploads/<session_id>")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(summary="Where a resumable upload stands", responses=_errors(403, 404, 410))
def upload_status(session_id: str):
    upload = _own_upload(session_id)
    try:
        progress = operations.upload_progress(auth.current_user, upload)
    except OperationError as error:
        return _error(error)
    response = jsonify(_session_json(upload, progress.offset, progress.bid))
    response.headers["Upload-Offset"] = str(progress.offset)
    response.headers["Cache-Control"] = "no-store"
    return response
