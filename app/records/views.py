"""Pages of the records area: the record of a tender (progress while the job runs, the
download, the signatures), staff's retry, and panel members' countersignature.

Access: staff of the tender's centre, supervisors and admins, and the tender's panel
members (others: 403 by role, 404 for an expert not on the panel; `app.records.access`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.limits import account_limit, signed_in_account
from app.accounts.models import Role
from app.core.boundary import attempt
from app.permissions import Permission, can
from app.records import operations
from app.records.access import record_tender
from app.records.forms import CountersignForm, RequestRecordForm
from app.records.models import RecordStatus
from app.records.versions import record_document
from app.tenders.access import existing_tender
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

bp = Blueprint("records", __name__, url_prefix="/records")

# Staff of the centre and admins request the record again; the chair too (the operation
# tells the chair from the other experts).
REQUESTERS = frozenset({Role.STAFF, Role.ADMIN, Role.EXPERT})


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
def show(tender_id: int) -> str:
    tender = record_tender(current_user, tender_id)
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
        document=record_document(record) if record else None,
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
def status(tender_id: int) -> dict:
    """The record's progress, polled by the page (static/js/record_progress.js)."""
    return _status(record_tender(current_user, tender_id))


@bp.route("/tenders/<int:tender_id>/record.pdf")
@login_required
def download(tender_id: int) -> Response:
    document = operations.current_document(record_tender(current_user, tender_id))
    return send_document(document, open_document(document))


def _record_action(
    tender: Tender, operation: Callable[..., Any], *args: Any, success: str
) -> Response:
    """Call the operation as the signed-in user: its success or its refusal is flashed on
    the record page (a failed second factor stays in the audit log)."""
    if attempt(operation, current_user, *args).ok:
        flash(success, "success")
    return redirect(url_for(".show", tender_id=tender.id), code=303)


@bp.route("/tenders/<int:tender_id>/request", methods=["POST"])
@login_required
def request_record(tender_id: int) -> Response:
    if current_user.role not in REQUESTERS:
        abort(403)
    tender = existing_tender(tender_id)
    if not RequestRecordForm().validate_on_submit():
        abort(400)
    return _record_action(
        tender, operations.request_record, tender, success=_("The record is being made.")
    )


@bp.route("/tenders/<int:tender_id>/countersign", methods=["POST"])
@login_required
@account_limit(signed_in_account, unless=lambda: current_user.role != Role.EXPERT)
def countersign(tender_id: int) -> Response:
    if current_user.role != Role.EXPERT:
        abort(403)
    tender = existing_tender(tender_id)
    record = operations.current_record(tender)
    if record is None or operations.seat_of(current_user, tender) is None:
        abort(404)
    form = CountersignForm()
    if not form.validate_on_submit():
        flash(_("Enter the six-digit code from your authenticator app."), "error")
        return redirect(url_for(".show", tender_id=tender_id), code=303)
    return _record_action(
        tender,
        operations.countersign,
        record,
        form.code.data.replace(" ", ""),
        success=_("You have countersigned the record."),
    )
