"""Pages of the records area: the record of a tender (progress while the job runs, the
download, the signatures), staff's retry, panel members' countersignature with the key they
hold (two JSON steps driven by static/js/member_key.js: prepare, then finish with the
browser's signature value), and the member's signing-key enrolment page.

Access: staff of the tender's centre, supervisors and admins, and the tender's panel
members (others: 403 by role, 404 for an expert not on the panel; `app.records.access`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.limits import account_limit, signed_in_account
from app.accounts.models import Role
from app.core.boundary import Outcome, attempt
from app.permissions import Permission, can
from app.records import member_keys, operations
from app.records.access import record_tender
from app.records.forms import CountersignForm, EnrolKeyForm, RequestRecordForm
from app.records.models import RecordStatus
from app.records.versions import record_document
from app.tenders.access import existing_tender
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

bp = Blueprint("records", __name__, url_prefix="/records")

# Staff of the centre and admins request the record again; the chair too (the operation
# tells the chair from the other experts).
REQUESTERS = frozenset({Role.STAFF, Role.ADMIN, Role.EXPERT})
SIX_DIGITS = re.compile(r"\d{3}\s?\d{3}")


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
        lots=operations.record_lots(record, tender),
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
        held_certificate=member_keys.held_certificate(current_user) if seat else None,
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


# --- countersigning with the member's own key (static/js/member_key.js) -------------------


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400)
    return body


def _refused(outcome: Outcome) -> tuple[Response, int]:
    error = outcome.error
    status = error.status or 400
    return jsonify({"status": status, "error": error.code, "message": str(error.message)}), status


def _bad_request(message: str, code: str = "invalid") -> tuple[Response, int]:
    return jsonify({"status": 400, "error": code, "message": message}), 400


def _b64(body: dict, name: str, limit: int = 4096) -> bytes | None:
    value = body.get(name)
    if not isinstance(value, str) or len(value) > limit:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _code(body: dict) -> str | None:
    code = body.get("code")
    if not isinstance(code, str) or not SIX_DIGITS.fullmatch(code.strip()):
        return None
    return code.replace(" ", "").strip()


def _expert_only() -> None:
    if current_user.role != Role.EXPERT:
        abort(403)


@bp.route("/tenders/<int:tender_id>/countersign", methods=["POST"])
@login_required
@account_limit(signed_in_account, unless=lambda: current_user.role != Role.EXPERT)
def countersign(tender_id: int) -> tuple[Response, int]:
    """Step 1 (JSON): confirm with the authenticator code; the server prepares the new
    revision and answers the CMS signed attributes for the member's key to sign."""
    _expert_only()
    tender = existing_tender(tender_id)
    record = operations.current_record(tender)
    if record is None or operations.seat_of(current_user, tender) is None:
        abort(404)
    code = _code(_json_body())
    if code is None:
        return _bad_request(_("Enter the six-digit code from your authenticator app."))
    outcome = attempt(
        operations.prepare_countersignature, current_user, record, code, flash_refusal=False
    )
    if not outcome.ok:
        return _refused(outcome)
    pending = outcome.value
    return jsonify(
        {
            "request": pending.id,
            "signed_attrs": base64.b64encode(pending.signed_attrs).decode("ascii"),
            "finish_url": url_for(".countersign_finish", tender_id=tender_id),
        }
    ), 201


@bp.route("/tenders/<int:tender_id>/countersign/finish", methods=["POST"])
@login_required
def countersign_finish(tender_id: int) -> tuple[Response, int]:
    """Step 2 (JSON): the browser's signature value (raw r||s, base64) of the signed
    attributes; the server checks it with the member's certificate and finishes the PDF."""
    _expert_only()
    tender = existing_tender(tender_id)
    record = operations.current_record(tender)
    if record is None or operations.seat_of(current_user, tender) is None:
        abort(404)
    body = _json_body()
    request_id, signature = body.get("request"), _b64(body, "signature")
    if not isinstance(request_id, int) or not 0 < request_id < 2**31 or signature is None:
        return _bad_request(_("Send the signing request and its signature value."))
    outcome = attempt(
        operations.finish_countersignature,
        current_user,
        record,
        request_id,
        signature,
        flash_refusal=False,
    )
    if not outcome.ok:
        return _refused(outcome)
    flash(_("You have countersigned the record."), "success")
    return jsonify({"field": outcome.value.field_name, "sha256": outcome.value.sha256}), 201


# --- the member's own signing key --------------------------------------------------------


@bp.route("/signing-key")
@login_required
def signing_key() -> str:
    """The member's signing key: enrol one (made and kept in this browser), or a new one
    after losing it (the old certificate is revoked)."""
    _expert_only()
    certificate = member_keys.held_certificate(current_user)
    return render_template(
        "records/signing_key.html",
        certificate=certificate,
        form=EnrolKeyForm(),
    )


@bp.route("/signing-key/nonce", methods=["POST"])
@login_required
def enrolment_nonce() -> tuple[Response, int]:
    _expert_only()
    outcome = attempt(operations.issue_enrolment_nonce, current_user, flash_refusal=False)
    if not outcome.ok:
        return _refused(outcome)
    return jsonify({"nonce": outcome.value.nonce, "account": current_user.id}), 201


@bp.route("/signing-key", methods=["POST"])
@login_required
@account_limit(signed_in_account, unless=lambda: current_user.role != Role.EXPERT)
def enrol_key() -> tuple[Response, int]:
    """JSON: {code, nonce, public_key (SPKI, base64), proof (raw r||s, base64)}."""
    _expert_only()
    body = _json_body()
    code, nonce = _code(body), body.get("nonce")
    public_key, proof = _b64(body, "public_key"), _b64(body, "proof")
    if code is None:
        return _bad_request(_("Enter the six-digit code from your authenticator app."))
    if not isinstance(nonce, str) or len(nonce) > 64 or public_key is None or proof is None:
        return _bad_request(_("Send the challenge, the public key and its signature."))
    outcome = attempt(
        operations.enrol_signing_key,
        current_user,
        code,
        public_key,
        nonce,
        proof,
        flash_refusal=False,
    )
    if not outcome.ok:
        return _refused(outcome)
    certificate = outcome.value
    flash(_("Your signing key is enrolled: your certificate was issued."), "success")
    return jsonify(
        {
            "serial": certificate.serial,
            "not_after": certificate.not_after.isoformat(),
            "certificate_pem": certificate.certificate_pem,
        }
    ), 201
