"""Pages of the records area: the record of a tender (progress while the job runs, the
download, the signatures), staff's retry, and panel members' countersignature.

Access: staff of the tender's centre, supervisors and admins, and the tender's panel
members (others: 403 by role, 404 for an expert not on the panel). Importing this module
registers the record request in the evaluation's finalise hooks.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.accounts.models import Role
from app.core.errors import OperationError
from app.extensions import db, limiter
from app.permissions import Permission, can
from app.records import operations
from app.records.forms import CountersignForm, RequestRecordForm
from app.records.models import RecordStatus
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

bp = Blueprint("records", __name__, url_prefix="/records")

VIEW_ROLES = frozenset({Role.STAFF, Role.SUPERVISOR, Role.ADMIN, Role.EXPERT})


def _register_hook() -> None:
    try:
        from app.evaluations.review import FINALISE_HOOKS
    except ImportError:  # the evaluation area is not there yet
        return
    if operations.finalise_hook not in FINALISE_HOOKS:
        FINALISE_HOOKS.append(operations.finalise_hook)


_register_hook()


def _tender(tender_id: int) -> Tender:
    if current_user.role not in VIEW_ROLES:
        abort(403)
    tender = db.session.get(Tender, tender_id)
    if tender is None:
        abort(404)
    if not operations.may_view(current_user, tender):
        abort(404 if current_user.role == Role.EXPERT else 403)
    return tender


def _status(tender: Tender) -> dict:
    record = operations.current_record(tender)
    if record is None:
        return {"status": None, "progress": 0, "step": "", "done": False}
    return {
        "record": record.id,
        "round": record.round,
        "status": record.status,
        "progress": record.progress,
        "step": record.step,
        "error": record.error if record.status == RecordStatus.FAILED else "",
        "pages": record.pages,
        "signatures": len(operations.signatures_of(record)),
        "done": record.status not in operations.ACTIVE,
    }


@bp.route("/tenders/<int:tender_id>")
@login_required
def show(tender_id: int):
    tender = _tender(tender_id)
    records = operations.records_of(tender)
    record = records[0] if records else None
    seat = operations.seat_of(current_user, tender)
    signatures = operations.signatures_of(record) if record else []
    signed_by_me = any(s.signer_id == current_user.id for s in signatures)
    return render_template(
        "records/show.html",
        tender=tender,
        record=record,
        older=records[1:],
        document=operations.record_document(record) if record else None,
        signatures=signatures,
        members=operations.signing_members(tender),
        seat=seat,
        may_sign=bool(
            seat
            and record
            and record.status in (RecordStatus.SIGNED, RecordStatus.COMPLETE)
            and not signed_by_me
        ),
        signed_by_me=signed_by_me,
        staff=can(current_user, Permission.MANAGE_TENDERS, tender.centre_id),
        statuses=RecordStatus,
        status=_status(tender),
        request_form=RequestRecordForm(),
        countersign_form=CountersignForm(),
    )


@bp.route("/tenders/<int:tender_id>/status.json")
@login_required
def status(tender_id: int):
    """The record's progress, polled by the page (static/js/record_progress.js)."""
    return _status(_tender(tender_id))


@bp.route("/tenders/<int:tender_id>/record.pdf")
@login_required
def download(tender_id: int):
    tender = _tender(tender_id)
    record = operations.current_record(tender)
    document = operations.record_document(record) if record else None
    if document is None:
        abort(404)
    try:
        return send_document(document, open_document(document))
    except OperationError as error:
        abort(error.status)


@bp.route("/tenders/<int:tender_id>/request", methods=["POST"])
@login_required
def request_record(tender_id: int):
    if current_user.role not in (Role.STAFF, Role.ADMIN, Role.EXPERT):
        abort(403)
    tender = db.session.get(Tender, tender_id)
    if tender is None:
        abort(404)
    form = RequestRecordForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        operations.request_record(current_user, tender)
    except OperationError as error:
        db.session.rollback()
        flash(str(error.message), "error")
        return redirect(url_for(".show", tender_id=tender_id)), 303
    db.session.commit()
    flash(_("The record is being made."), "success")
    return redirect(url_for(".show", tender_id=tender_id)), 303


def _sign_key() -> str:
    return f"countersign:{current_user.get_id()}"


@bp.route("/tenders/<int:tender_id>/countersign", methods=["POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN_ACCOUNT"], key_func=_sign_key)
def countersign(tender_id: int):
    if current_user.role != Role.EXPERT:
        abort(403)
    tender = db.session.get(Tender, tender_id)
    if tender is None:
        abort(404)
    record = operations.current_record(tender)
    if record is None or operations.seat_of(current_user, tender) is None:
        abort(404)
    form = CountersignForm()
    if not form.validate_on_submit():
        flash(_("Enter the six-digit code from your authenticator app."), "error")
        return redirect(url_for(".show", tender_id=tender_id)), 303
    try:
        operations.countersign(current_user, record, form.code.data.replace(" ", ""))
    except OperationError as error:
        if error.code == "bad_totp":
            db.session.commit()  # keep the audited failed attempt; nothing else changed
        else:
            db.session.rollback()
        flash(str(error.message), "error")
        return redirect(url_for(".show", tender_id=tender_id)), 303
    db.session.commit()
    flash(_("You have countersigned the record."), "success")
    return redirect(url_for(".show", tender_id=tender_id)), 303
