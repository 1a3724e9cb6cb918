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
from app.bids.forms import EnvelopeForm, WithdrawForm
from app.bids.models import BidStatus
from app.core.access import restrict_blueprint
from app.core.errors import OperationError
from app.core.formatting import centre_time, centre_timezone, file_size
from app.core.types import timestamp, utcnow
from app.custody.operations import envelope_tender_id, tender_key_of
from app.errors import TITLES
from app.extensions import csrf, db, limiter
from app.tender_templates.errors import TemplateValidationError
from app.tender_templates.rendering import localized
from app.tenders import participation
from app.tenders.models import Tender
from app.tenders.operations import template_document

bp = Blueprint("bids", __name__, url_prefix="/bids")
restrict_blueprint(bp, Role.BIDDER)


def upload_limit() -> str:
    return current_app.config["RATELIMIT_BID_UPLOAD"]


def uploader_key() -> str:
    """Rate limits count per account (every bidder may sit behind one office address)."""
    return f"bid-upload:{current_user.get_id() or request.remote_addr}"


@bp.context_processor
def bid_helpers():
    return {
        "centre_time": centre_time,
        "iso": timestamp,
        "file_size": file_size,
        "BidStatus": BidStatus,
    }


def _visible_tender(tender_id: int) -> Tender:
    tender = db.session.get(Tender, tender_id)
    if tender is None or not participation.can_see_tender(current_user, tender):
        abort(404)
    return tender


def _client() -> dict:
    return {"ip": request.remote_addr, "user_agent": request.user_agent.string or ""}


def _json_error(error: OperationError):
    db.session.rollback()
    body = {"status": error.status, "error": error.code, "message": str(error.message)}
    if isinstance(error, operations.OffsetMismatch):
        body["offset"] = error.offset
    return jsonify(body), error.status


def _refusal(tender: Tender) -> str | None:
    """Why the signed-in bidder's company cannot bid for this tender, or None."""
    try:
        operations.bidding_company(current_user, tender)
    except OperationError as error:
        return str(error.message)
    return None


def _seal_form_data(tender: Tender) -> dict:
    """What the in-browser sealing form needs: the template's commercial fields and
    qualification documents (labels in the page's language), and the bundle's SRI value."""
    locale = str(get_locale() or "en")
    try:
        document = template_document(tender.template_version)
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
                "max_length": item.get("max_length"),
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


def _render_page(tender: Tender, form: EnvelopeForm | None = None, status: int = 200):
    company = current_user.company
    now = utcnow()
    bids = operations.company_bids(current_user, tender)
    sealing_record = operations.sealing_record_of(tender)
    page = render_template(
        "bids/tender.html",
        tender=tender,
        company=company,
        envelope_tender=envelope_tender_id(tender),
        bidder=operations.bidder_id(company) if company else None,
        tender_key=tender_key_of(tender),
        bids=bids,
        open=operations.is_open(tender),
        refusal=_refusal(tender),
        form=form or EnvelopeForm(formdata=None),
        withdraw_form=WithdrawForm(formdata=None),
        sealing_record=sealing_record,
        now=now,
        timezone=centre_timezone(tender.centre),
        max_size=current_app.config["MAX_ENVELOPE_SIZE"],
        chunk_size=current_app.config["UPLOAD_CHUNK_SIZE"],
        **_seal_form_data(tender),
    )
    return page, status


@bp.route("/")
def index():
    registrations = participation.company_registrations(current_user)
    return render_template("bids/index.html", registrations=registrations, now=utcnow())


@bp.route("/tenders/<int:tender_id>")
def tender(tender_id: int):
    return _render_page(_visible_tender(tender_id))


@bp.route("/tenders/<int:tender_id>/envelope", methods=["POST"])
# The global CSRF check would parse the multipart body under the 64 MiB form limit before
# this view can raise it to the envelope limit; EnvelopeForm checks the token instead.
@csrf.exempt
@limiter.limit(upload_limit, key_func=uploader_key)
def submit_envelope(tender_id: int):
    tender = _visible_tender(tender_id)
    request.max_content_length = current_app.config["MAX_ENVELOPE_SIZE"] + 64 * 1024
    form = EnvelopeForm()
    if not form.validate_on_submit():
        return _render_page(tender, form=form, status=400)
    try:
        bid = operations.submit_envelope(
            current_user, tender, form.envelope.data.stream, **_client()
        )
    except OperationError as error:
        db.session.rollback()
        form.envelope.errors = [str(error.message)]
        return _render_page(tender, form=form, status=error.status)
    db.session.commit()
    flash(
        _(
            "Your sealed bid is received: sequence %(sequence)d. Keep the receipt.",
            sequence=bid.id,
        ),
        "success",
    )
    return redirect(url_for("bids.tender", tender_id=tender.id))


@bp.route("/tenders/<int:tender_id>/uploads", methods=["POST"])
@limiter.limit(upload_limit, key_func=uploader_key)
def start_upload(tender_id: int):
    tender = _visible_tender(tender_id)
    body = request.get_json(silent=True) or {}
    try:
        upload = operations.start_upload(current_user, tender, body.get("size"))
    except OperationError as error:
        return _json_error(error)
    db.session.commit()
    return jsonify(_session_json(upload, 0)), 201


def _session_json(upload, offset: int, bid=None) -> dict:
    data = {
        "id": upload.id,
        "url": url_for("bids.upload_chunk", session_id=upload.id),
        "offset": offset,
        "size": upload.declared_size,
        "chunk_size": current_app.config["UPLOAD_CHUNK_SIZE"],
        "complete": bid is not None,
    }
    if bid is not None:
        data["bid"] = operations.bid_data(bid)
        data["receipt"] = data["bid"]["receipt"]
        data["page"] = url_for("bids.tender", tender_id=bid.tender_id)
    return data


def _own_upload(session_id: str):
    upload = operations.upload_of_company(current_user, session_id)
    if upload is None:
        abort(404)
    return upload


@bp.route("/uploads/<session_id>", methods=["PUT"])
def upload_chunk(session_id: str):
    upload = _own_upload(session_id)
    try:
        progress = operations.append_chunk(
            current_user,
            upload,
            request.headers.get("Content-Range"),
            request.stream,
            **_client(),
        )
    except OperationError as error:
        return _json_error(error)
    db.session.commit()
    return jsonify(_session_json(upload, progress.offset, progress.bid))


@bp.route("/uploads/<session_id>", methods=["GET"])
def upload_status(session_id: str):
    """The offset to resume from (also as `Upload-Offset` for HEAD requests)."""
    upload = _own_upload(session_id)
    try:
        progress = operations.upload_progress(current_user, upload)
    except OperationError as error:
        return _json_error(error)
    response = jsonify(_session_json(upload, progress.offset, progress.bid))
    response.headers["Upload-Offset"] = str(progress.offset)
    response.headers["Upload-Length"] = str(upload.declared_size)
    response.headers["Cache-Control"] = "no-store"
    return response


def _own_bid(bid_id: int):
    bid = operations.bid_of_company(current_user, bid_id)
    if bid is None:
        abort(404)
    return bid


@bp.route("/<int:bid_id>/withdraw", methods=["POST"])
def withdraw(bid_id: int):
    bid = _own_bid(bid_id)
    if not WithdrawForm().validate_on_submit():
        abort(400)
    try:
        operations.withdraw_bid(current_user, bid)
    except OperationError as error:
        db.session.rollback()
        page = render_template(
            "bids/refused.html",
            status=error.status,
            title=TITLES.get(error.status, str(error.status)),
            message=error.message,
            tender_id=bid.tender_id,
        )
        return page, error.status
    db.session.commit()
    flash(_("Your bid is withdrawn. You may submit a new one before the deadline."), "success")
    return redirect(url_for("bids.tender", tender_id=bid.tender_id))


@bp.route("/<int:bid_id>/receipt")
def receipt(bid_id: int):
    """The signed receipt as the bidder keeps it (verify with python -m bidding)."""
    bid = _own_bid(bid_id)
    response = Response(bid.receipt, mimetype="application/json")
    name = f"receipt-T{bid.tender_id}-{bid.id}.json"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
