"""What the bid page and the API answer alike: the client's address for the audit, the
state of a resumable upload, and the receipt a bidder keeps."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request, url_for

from app.bids import operations
from app.bids.models import Bid, UploadSession


def client_info() -> dict:
    """Where a bid came from, stored with it (never shown to other bidders)."""
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string or ""}


def upload_limit() -> str:
    return current_app.config["RATELIMIT_BID_UPLOAD"]


def upload_state(
    upload: UploadSession, chunk_endpoint: str, offset: int = 0, bid: Bid | None = None
) -> dict:
    """A resumable upload as JSON: where to PUT the next chunk and from which offset; once
    complete, the bid and its receipt."""
    data = {
        "id": upload.id,
        "url": url_for(chunk_endpoint, session_id=upload.id),
        "offset": offset,
        "size": upload.declared_size,
        "chunk_size": current_app.config["UPLOAD_CHUNK_SIZE"],
        "complete": bid is not None,
    }
    if bid is not None:
        data["bid"] = operations.bid_data(bid)
        data["receipt"] = data["bid"]["receipt"]
    return data


def upload_status_response(state: dict) -> Response:
    """The offset to resume from, also as `Upload-Offset` (for HEAD requests)."""
    response = jsonify(state)
    response.headers["Upload-Offset"] = str(state["offset"])
    response.headers["Upload-Length"] = str(state["size"])
    response.headers["Cache-Control"] = "no-store"
    return response


def receipt_download(bid: Bid) -> Response:
    """The signed receipt as the bidder keeps it (verify with python -m bidding)."""
    response = Response(bid.receipt, mimetype="application/json")
    name = f"receipt-T{bid.tender_id}-{bid.id}.json"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
