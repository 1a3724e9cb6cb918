"""API: result notices (public), candidates, objections and their decisions, sending a tender
back to evaluation, the award, failure, re-tendering, and a bidder's result letter.

Money and scores are decimal strings, times ISO 8601 in UTC. The operations check the
centre scope and the state; a refusal changes nothing and answers in the usual error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from apiflask import Schema
from apiflask.fields import String
from apiflask.validators import Length, OneOf
from flask import abort, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.api import auth, bp, roles_required
from app.api.roles import BIDDERS, TENDER_MANAGERS, VIEWERS
from app.api.schemas import error_responses
from app.api.tenders import tender_scope
from app.core.boundary import transactional
from app.core.errors import OperationError
from app.evaluations.models import EvaluationStage
from app.extensions import db
from app.permissions import Permission, can
from app.results import operations, reading
from app.results.access import letter_document, tender_objection
from app.results.models import Objection, ObjectionStatus, ResultNotice
from app.tenders.access import public_tender, visible_tender
from app.tenders.documents import Upload, open_document, send_document
from app.tenders.models import Tender

LOT_FIELD = {
    "load_default": None,
    "validate": Length(min=1, max=32),
    "metadata": {"description": "A lot's reference, in a tender of several lots."},
}


class FailureIn(Schema):
    reason_code = String(required=True, validate=OneOf(operations.FAILURE_CODES))
    text = String(load_default="", validate=Length(max=4000))
    lot = String(**LOT_FIELD)


class LotQuery(Schema):
    lot = String(**LOT_FIELD)


class DecisionIn(Schema):
    outcome = String(
        required=True, validate=OneOf([ObjectionStatus.UPHELD, ObjectionStatus.DISMISSED])
    )
    reason = String(required=True, validate=Length(min=1, max=operations.MAX_OBJECTION_TEXT))


class ReopenIn(Schema):
    reason = String(required=True, validate=Length(min=1, max=operations.MAX_OBJECTION_TEXT))
    stage = String(
        load_default=EvaluationStage.SCORING.value,
        validate=OneOf([stage.value for stage in operations.REOPEN_STAGES]),
    )


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def notice_data(notice: ResultNotice) -> dict:
    return {
        "id": notice.id,
        "kind": notice.kind,
        # The lot's reference in a tender of several lots (None: the whole tender).
        "lot": (notice.content or {}).get("lot", {}).get("reference") if notice.lot_id else None,
        "published_at": _time(notice.published_at),
        "objection_deadline": _time(notice.objection_deadline),
        "superseded_at": _time(notice.superseded_at),
        "reason": notice.reason,
        "content": notice.content or {},
        # The notice as the platform signed it (`python -m bidding verify-notice`).
        "signed_url": (
            url_for("results.signed_notice", tender_id=notice.tender_id, notice_id=notice.id)
            if notice.document_id
            else None
        ),
    }


def objection_data(objection: Objection, with_company: bool = True) -> dict:
    notice = db.session.get(ResultNotice, objection.notice_id)
    data = {
        "id": objection.id,
        "notice_id": objection.notice_id,
        "lot": notice_data(notice)["lot"] if notice is not None else None,
        "filed_at": _time(objection.filed_at),
        "text": objection.text,
        "attachments": objection.attachments or [],
        "status": objection.status,
        "decided_at": _time(objection.decided_at),
        "decision_reason": objection.decision_reason,
    }
    if with_company:
        data["company_id"] = objection.company_id
    return data


def lot_data(state: dict) -> dict:
    """One lot's result: its status (pending, candidates, awarded, failed), its notice in
    force, whether its objection period is open and how many objections to it are open."""
    lot = state["lot"]
    notice = state["notice"]
    return {
        "lot": lot.reference,
        "number": lot.number,
        "title": lot.title,
        "status": state["status"],
        "notice": notice_data(notice) if notice is not None else None,
        "window_open": state["window_open"],
        "open_objections": state["open_objections"],
    }


def _results(tender: Tender) -> dict:
    current = reading.current_notice(tender)
    links = reading.retender_links(tender)
    return {
        "tender": tender.id,
        "status": tender.status,
        "current": notice_data(current) if current else None,
        # A tender of several lots: each lot's result (empty for one lot).
        "lots": [lot_data(state) for state in reading.lot_states(tender)],
        "notices": [notice_data(n) for n in reading.notices_of(tender)],
        "retender": {
            k: {"id": v["id"], "reference": v["reference"]} if v else None for k, v in links.items()
        },
    }


def _staff_call(tender_id: int, operation: Callable[..., Any], *args: Any) -> dict:
    """One staff action on the tender; the answer is its results as they now stand."""
    tender = visible_tender(auth.current_user, tender_id)
    operation(auth.current_user, tender, *args)
    return _results(tender)


@bp.get("/tenders/<int:tender_id>/results")
@bp.doc(
    summary="The result notices of a tender (public)",
    description="`current` is the notice in force (candidates with the objection deadline, "
    "award, or failure); `notices` lists every notice, superseded ones marked. A tender of "
    "several lots has one notice per lot (`lot`: its reference) and `lots` gives each "
    "lot's status (pending, candidates, awarded, failed), notice in force and open "
    "objections.",
    responses=error_responses(404),
)
def get_results(tender_id: int) -> dict:
    return _results(public_tender(tender_id))


@bp.post("/tenders/<int:tender_id>/results/candidates")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.doc(
    summary="Publish the candidates (staff of the centre)",
    description="Once the panel has finalised and the record of the round is signed; the "
    "objection period starts now.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def publish_candidates(tender_id: int) -> tuple[dict, int]:
    return _staff_call(tender_id, operations.publish_candidates), 201


@bp.post("/tenders/<int:tender_id>/results/award")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(LotQuery, location="query", arg_name="query")
@bp.doc(
    summary="Publish the award (staff of the centre)",
    description="After the objection period, with no objection open; the result letters "
    "are made by a job once every lot is decided. A tender of several lots: the award of "
    "the lot `?lot=REF`, or of every lot whose objection period is over and whose "
    "objections are decided.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def publish_award(tender_id: int, query: dict) -> tuple[dict, int]:
    tender = visible_tender(auth.current_user, tender_id)
    lot = operations.resolve_lot(tender, query.get("lot"))
    operations.publish_award(auth.current_user, tender, lot)
    return _results(tender), 201


@bp.post("/tenders/<int:tender_id>/results/failure")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(FailureIn, arg_name="body")
@bp.doc(
    summary="Declare the tender failed (staff of the centre)",
    description="`reason_code`: no_compliant_bid, too_few_bids, all_over_ceiling or other "
    "(`text` required). From opened, evaluating or candidates. A tender of several lots: "
    "`lot` fails that lot only (not yet awarded or failed); without it the whole tender "
    "fails, while no lot is awarded.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def declare_failed(tender_id: int, body: dict) -> dict:
    tender = visible_tender(auth.current_user, tender_id)
    lot = operations.resolve_lot(tender, body.get("lot"))
    operations.declare_failed(auth.current_user, tender, body["reason_code"], body["text"], lot)
    return _results(tender)


@bp.post("/tenders/<int:tender_id>/results/retender")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.doc(
    summary="Re-tender a failed tender as a new draft (staff of the centre)",
    description="Copies the template version, title, lots, budget, custodians and "
    "description; the reference is `<old>-R<n>`.",
    responses=error_responses(403, 404, 409),
)
@transactional
def retender(tender_id: int) -> tuple[dict, int]:
    new = operations.retender(auth.current_user, visible_tender(auth.current_user, tender_id))
    return {"id": new.id, "reference": new.reference, "status": new.status}, 201


@bp.post("/tenders/<int:tender_id>/results/reopen")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(ReopenIn, arg_name="body")
@bp.doc(
    summary="Send the tender back to evaluation after an upheld objection (staff)",
    description="Supersedes the signed record and the candidates notice; the evaluation "
    "starts a new round at `stage` (scoring or review).",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def reopen_evaluation(tender_id: int, body: dict) -> dict:
    return _staff_call(
        tender_id, operations.reopen_evaluation, body["reason"], EvaluationStage(body["stage"])
    )


@bp.get("/tenders/<int:tender_id>/objections")
@bp.auth_required(auth)
@roles_required(*VIEWERS, *BIDDERS)
@bp.doc(
    summary="Objections to a tender's candidates",
    description="Staff of the centre and supervisors see every objection; a bidder sees "
    "its own company's.",
    responses=error_responses(403, 404),
)
def list_objections(tender_id: int) -> dict:
    tender = visible_tender(auth.current_user, tender_id)
    user = auth.current_user
    if can(user, Permission.VIEW_TENDERS, tender.centre_id):
        objections = reading.objections_of(tender)
    elif can(user, Permission.TAKE_PART):
        objections = reading.objections_of(tender, user.company_id)
    else:
        abort(403)
    return {"objections": [objection_data(o) for o in objections]}


@bp.post("/tenders/<int:tender_id>/objections")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="File an objection to the candidates (companies that bid)",
    description="`multipart/form-data` with `text` and up to five `attachments` files, or "
    'JSON `{"text": ...}`. Only within the objection period (server clock), one open '
    "objection per company at a time. A tender of several lots: `lot` (the reference of "
    "a lot the company bid for) is required, and the limit is one open objection per "
    "company and lot.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def file_objection(tender_id: int) -> tuple[dict, int]:
    tender = visible_tender(auth.current_user, tender_id)
    if request.is_json:
        body = request.get_json(silent=True)
        text = body.get("text", "") if isinstance(body, dict) else ""
        reference = body.get("lot") if isinstance(body, dict) else None
        uploads = []
    else:
        text = request.form.get("text", "")
        reference = request.form.get("lot")
        uploads = [
            Upload(f.filename or "", f.mimetype, f.stream)
            for f in request.files.getlist("attachments")
            if f and f.filename
        ]
    if not isinstance(text, str):
        raise OperationError(_l("Say what the objection is about and why."), code="text")
    if reference is not None and not isinstance(reference, str):
        raise OperationError(_l("This tender has no such lot."), code="lot")
    lot = operations.resolve_lot(tender, reference)
    objection = operations.file_objection(auth.current_user, tender, text, uploads, lot)
    return objection_data(objection), 201


@bp.post("/tenders/<int:tender_id>/objections/<int:objection_id>/decision")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@tender_scope(Permission.MANAGE_TENDERS)
@bp.input(DecisionIn, arg_name="body")
@bp.doc(
    summary="Uphold or dismiss an objection, with the reason (staff of the centre)",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def decide_objection(tender_id: int, objection_id: int, body: dict) -> dict:
    tender = visible_tender(auth.current_user, tender_id)
    objection = tender_objection(tender, objection_id)
    operations.decide_objection(auth.current_user, objection, body["outcome"], body["reason"])
    return objection_data(objection)


@bp.get("/tenders/<int:tender_id>/results/letter")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="The caller's company's result letter (signed PDF)",
    description="404 until the letters job has made it.",
    responses=error_responses(403, 404),
)
def result_letter(tender_id: int) -> Response:
    document = letter_document(
        visible_tender(auth.current_user, tender_id), auth.current_user.company_id
    )
    return send_document(document, open_document(document))
