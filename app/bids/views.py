"""Bidders submit, replace and withdraw sealed bids; they download their receipts.

The bid page uploads an envelope with app/static/js/upload.js in resumable chunks (JSON
endpoints below, CSRF token in the X-CSRFToken header); without JavaScript the same page
posts the file as a plain multipart form.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from app.accounts.models import Role
from app.bids import operations, sealing_script
from app.bids.access import own_bid, own_upload
from app.bids.forms import EnvelopeForm, WithdrawForm
from app.bids.models import Bid, BidStatus, UploadSession
from app.bids.responses import (
    client_info,
    receipt_download,
    upload_limit,
    upload_state,
    upload_status_response,
)
from app.core.access import restrict_blueprint
from app.core.boundary import attempt, settle, transactional
from app.core.errors import OperationError
from app.core.formatting import centre_time, centre_timezone, file_size
from app.core.types import timestamp, utcnow
from app.custody.operations import envelope_tender_id, tender_key_of
from app.errors import TITLES, error_response
from app.extensions import csrf, limiter
from app.tender_templates.errors import TemplateValidationError
from app.tender_templates.rendering import localized
from app.tenders import participation
from app.tenders.access import visible_tender
from app.tenders.models import Tender
from app.tenders.operations import template_of
from bidding.commercial import MAX_TEXT_LENGTH

bp = Blueprint("bids", __name__, url_prefix="/bids")
restrict_blueprint(bp, Role.BIDDER)

# The resumable upload endpoints answer in JSON, refusals included (upload.js reads `error`
# and `offset`).
_JSON_ENDPOINTS = frozenset({"bids.start_upload", "bids.upload_chunk", "bids.upload_status"})


def uploader_key() -> str:
    """Rate limits count per account (every bidder may sit behind one office address)."""
    return f"bid-upload:{current_user.get_id() or request.remote_addr}"


@bp.context_processor
def bid_helpers() -> dict:
    return {
        "centre_time": centre_time,
        "iso": timestamp,
        "file_size": file_size,
        "BidStatus": BidStatus,
    }


@bp.errorhandler(OperationError)
def refused(error: OperationError) -> Response | tuple[Response, int]:
    """A refusal that reached the boundary: the upload endpoints answer it in the API's JSON
    shape (they are not under /api/, where the app's handler would do so); any other route
    gets the app's error page."""
    settle(error)
    if request.endpoint not in _JSON_ENDPOINTS:
        return error_response(error.status, error.message, code=error.code, detail=error.detail())
    body = {"status": error.status, "error": error.code, "message": str(error.message)}
    return jsonify({**body, **error.detail()}), error.status


def _seal_form_data(tender: Tender) -> dict:
    """What the in-browser sealing form needs: the template's commercial fields and
    qualification documents (labels in the page's language), and the bundle's SRI value."""
    locale = str(get_locale() or "en")
    try:
        document = template_of(tender)  # parsed once per template text
    except TemplateValidationError:  # published templates are valid; the CLI works anyway
        current_app.logger.warning("tender %s: template does not load", tender.id)
        document = {}
    fields = []
    for item in document.get("commercial_fields") or []:
        fields.append(
            {
                "key": item["key"],
                "type": item["type"],
                "label": localized(item.get("label"), locale) or item["key"],
                "help": localized(item.get("help"), locale),
                "required": item["key"] == "price" or item.get("required", True) is not False,
                "min": item.get("min"),
                "max": item.get("max"),
                "choices": list(item.get("choices") or []),
                "max_length": item.get("max_length")
                or (MAX_TEXT_LENGTH if item["type"] == "text" else None),
            }
        )
    qualifications = [
        {
            "key": item["key"],
            "label": localized(item.get("label"), locale) or item["key"],
            "required": item.get("required", True) is not False,
        }
        for item in document.get("qualification_documents") or []
    ]
    try:
        integrity = sealing_script.integrity()
    except sealing_script.SealingScriptMissing:
        current_app.logger.warning("the browser sealing script is not built: run make")
        integrity = None
    return {
        "commercial_fields": fields,
        "qualification_documents": qualifications,
        "sealing_integrity": integrity,
        "sealing_script_file": sealing_script.STATIC_FILENAME,
    }


def _render_page(
    tender: Tender, form: EnvelopeForm | None = None, status: int = 200
) -> tuple[str, int]:
    company = current_user.company
    now = utcnow()
    bids = operations.company_bids(current_user, tender)
    sealing_record = operations.sealing_record_of(tender)
    registration = participation.registration_of(tender, company.id if company else None)
    page = render_template(
        "bids/tender.html",
        tender=tender,
        company=company,
        envelope_tender=envelope_tender_id(tender),
        bidder=operations.bidder_id(company) if company else None,
        tender_key=tender_key_of(tender),
        bids=bids,
        open=operations.is_open(tender),
        refusal=operations.bidding_refusal(current_user, tender),
        form=form or EnvelopeForm(formdata=None),
        withdraw_form=WithdrawForm(formdata=None),
        sealing_record=sealing_record,
        now=now,
        timezone=centre_timezone(tender.centre),
        max_size=current_app.config["MAX_ENVELOPE_SIZE"],
        chunk_size=current_app.config["UPLOAD_CHUNK_SIZE"],
        lot_references={lot.id: lot.reference for lot in tender.lots},
        # The lots it may still seal for: those it registered for, less any cancelled.
        my_lots=(
            [lot for lot in registration.lots if not lot.is_cancelled]
            if registration is not None and tender.has_lots
            else []
        ),
        **_seal_form_data(tender),
    )
    return page, status


@bp.route("/")
def index() -> str:
    registrations = participation.company_registrations(current_user)
    return render_template("bids/index.html", registrations=registrations, now=utcnow())


@bp.route("/tenders/<int:tender_id>")
def tender(tender_id: int) -> tuple[str, int]:
    return _render_page(visible_tender(current_user, tender_id))


@bp.route("/tenders/<int:tender_id>/envelope", methods=["POST"])
# The global CSRF check would parse the multipart body under the 64 MiB form limit before
# this view can raise it to the envelope limit; EnvelopeForm checks the token instead.
@csrf.exempt
@limiter.limit(upload_limit, key_func=uploader_key)
def submit_envelope(tender_id: int) -> Response | tuple[str, int]:
    tender = visible_tender(current_user, tender_id)
    request.max_content_length = current_app.config["MAX_ENVELOPE_SIZE"] + 64 * 1024
    form = EnvelopeForm()
    if not form.validate_on_submit():
        return _render_page(tender, form=form, status=400)
    outcome = attempt(
        operations.submit_envelope,
        current_user,
        tender,
        form.envelope.data.stream,
        flash_refusal=False,
        **client_info(),
    )
    if not outcome.ok:
        form.envelope.errors = [str(outcome.error.message)]
        return _render_page(tender, form=form, status=outcome.error.status)
    flash(
        _(
            "Your sealed bid is received: sequence %(sequence)d. Keep the receipt.",
            sequence=outcome.value.id,
        ),
        "success",
    )
    return redirect(url_for("bids.tender", tender_id=tender.id))


def _upload_state(upload: UploadSession, offset: int = 0, bid: Bid | None = None) -> dict:
    data = upload_state(upload, "bids.upload_chunk", offset, bid)
    if bid is not None:
        data["page"] = url_for("bids.tender", tender_id=bid.tender_id)
    return data


@bp.route("/tenders/<int:tender_id>/uploads", methods=["POST"])
@limiter.limit(upload_limit, key_func=uploader_key)
@transactional
def start_upload(tender_id: int) -> tuple[Response, int]:
    tender = visible_tender(current_user, tender_id)
    body = request.get_json(silent=True) or {}
    upload = operations.start_upload(current_user, tender, body.get("size"))
    return jsonify(_upload_state(upload)), 201


@bp.route("/uploads/<session_id>", methods=["PUT"])
# Committed before the answer leaves: the last chunk's receipt is for a stored bid.
@transactional
def upload_chunk(session_id: str) -> Response:
    upload = own_upload(current_user, session_id)
    progress = operations.append_chunk(
        current_user,
        upload,
        request.headers.get("Content-Range"),
        request.stream,
        **client_info(),
    )
    return jsonify(_upload_state(upload, progress.offset, progress.bid))


@bp.route("/uploads/<session_id>", methods=["GET"])
def upload_status(session_id: str) -> Response:
    """The offset to resume from (also as `Upload-Offset` for HEAD requests)."""
    upload = own_upload(current_user, session_id)
    progress = operations.upload_progress(current_user, upload)
    return upload_status_response(_upload_state(upload, progress.offset, progress.bid))


@bp.route("/<int:bid_id>/withdraw", methods=["POST"])
def withdraw(bid_id: int) -> Response | tuple[str, int]:
    bid = own_bid(current_user, bid_id)
    if not WithdrawForm().validate_on_submit():
        abort(400)
    outcome = attempt(operations.withdraw_bid, current_user, bid, flash_refusal=False)
    if not outcome.ok:
        error = outcome.error
        page = render_template(
            "bids/refused.html",
            status=error.status,
            title=TITLES.get(error.status, str(error.status)),
            message=error.message,
            tender_id=bid.tender_id,
        )
        return page, error.status
    flash(_("Your bid is withdrawn. You may submit a new one before the deadline."), "success")
    return redirect(url_for("bids.tender", tender_id=bid.tender_id))


@bp.route("/<int:bid_id>/receipt")
def receipt(bid_id: int) -> Response:
    """The signed receipt as the bidder keeps it (verify with python -m bidding)."""
    return receipt_download(own_bid(current_user, bid_id))
