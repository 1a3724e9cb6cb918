"""API: the evaluation's review stage. Staff start the evaluation; the panel reads the review
(compliance, reasons, price and commercial scores with their working, abnormally-low flags:
bids by company and opening sequence, never by technical code) and the anonymity questions
(by technical code, identities masked, no names or prices); the chair overrules verdicts,
records checks, decides anonymity questions and price justifications, and confirms the
review; a bidder asked to justify its price answers (multipart form with attachments).

Every chair action re-runs the computation; money and scores are decimal strings."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, String
from apiflask.validators import Length, Range
from flask import abort, request
from flask_babel import lazy_gettext as _l

from app.accounts.models import Role
from app.api import auth, bp, roles_required
from app.api.roles import BIDDERS, TENDER_MANAGERS
from app.api.schemas import error_responses
from app.core.boundary import transactional
from app.core.errors import OperationError
from app.core.urls import public_url
from app.evaluations import operations, presentation, queries
from app.opening.models import EvaluatedBid
from app.panels.access import panel_or_overseer_tender, panel_tender
from app.tenders.access import public_tender, staff_tender
from app.tenders.documents import Upload
from app.tenders.models import Tender

PANEL_AND_VIEWERS = (Role.EXPERT, Role.STAFF, Role.SUPERVISOR, Role.ADMIN)
PANEL = (Role.EXPERT,)


class StartIn(Schema):
    chair_id = Integer(
        load_default=None,
        strict=True,
        metadata={"description": "A panel member's user id (default: seat 1)."},
    )


class OverruleIn(Schema):
    compliant = Boolean(
        required=True,
        allow_none=True,
        metadata={"description": "The panel's verdict; null withdraws the overrule."},
    )
    reason = String(required=True, validate=Length(min=1, max=4000))


class CheckIn(Schema):
    check = String(required=True, validate=Length(min=1, max=64))
    passed = Boolean(required=True)
    reason = String(required=True, validate=Length(min=1, max=4000))


class DecisionIn(Schema):
    accepted = Boolean(required=True)
    reason = String(required=True, validate=Length(min=1, max=4000))


class AnonymityIn(DecisionIn):
    code = String(required=True, validate=Length(min=1, max=16))


class RequestIn(Schema):
    days = Integer(load_default=None, strict=True, validate=Range(min=1, max=30))


def _review(tender: Tender) -> dict:
    return presentation.review_data(tender)


def _started_tender(tender_id: int) -> Tender:
    """A tender whose evaluation has started, for its panel and overseers (404 before)."""
    tender = panel_or_overseer_tender(auth.current_user, tender_id)
    if queries.evaluation_of(tender) is None:
        abort(404)
    return tender


@bp.get("/tenders/<int:tender_id>/evaluation/review")
@bp.auth_required(auth)
@roles_required(*PANEL_AND_VIEWERS)
@bp.doc(
    summary="The review of an evaluation (panel, centre staff, supervisors)",
    description="Each opened bid by opening sequence and company: compliance verdict and "
    "reasons (translated), required checks, price and commercial scores, abnormally-low "
    "flags and justification; the price benchmark and its working. While the review is "
    "open, checks not yet recorded count as passed (`provisional`). Until unblinding the "
    "`technical_part_anonymous` check reads `blind` on every bid (`failed` only on a bid whose "
    "technical part was rejected): the anonymity questions are decided by technical code, "
    "and only their number (`open_questions.anonymity`) shows here.",
    responses=error_responses(403, 404),
)
def evaluation_review(tender_id: int) -> dict:
    return _review(_started_tender(tender_id))


@bp.get("/tenders/<int:tender_id>/evaluation/anonymity")
@bp.auth_required(auth)
@roles_required(*PANEL_AND_VIEWERS)
@bp.doc(
    summary="Anonymity questions by technical code (no names, no prices)",
    responses=error_responses(403, 404),
)
def evaluation_anonymity(tender_id: int) -> dict:
    return presentation.anonymity_data(_started_tender(tender_id))


@bp.post("/tenders/<int:tender_id>/evaluation/start")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.input(StartIn, arg_name="body")
@bp.doc(
    summary="Start the evaluation of an opened tender (staff)",
    description="The panel must be complete (every seat accepted and declared no conflict).",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def evaluation_start(tender_id: int, body: dict) -> tuple[dict, int]:
    tender = staff_tender(auth.current_user, tender_id, public_only=True)
    chair = None
    if body.get("chair_id") is not None:
        chair = next(
            (m.user for m in queries.panel_experts(tender) if m.user_id == body["chair_id"]), None
        )
        if chair is None:
            raise OperationError(
                _l("The chair must be a member of the panel who declared no conflict."),
                code="chair_not_member",
            )
    operations.start_evaluation(auth.current_user, tender, chair)
    return _review(tender), 201


@bp.post("/tenders/<int:tender_id>/evaluation/bids/<int:bid_id>/overrule")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.input(OverruleIn, arg_name="body")
@bp.doc(
    summary="Overrule a compliance verdict (chair)", responses=error_responses(400, 403, 404, 409)
)
@transactional
def evaluation_overrule(tender_id: int, bid_id: int, body: dict) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.overrule(auth.current_user, tender, bid_id, body["compliant"], body["reason"])
    return _review(tender)


@bp.post("/tenders/<int:tender_id>/evaluation/bids/<int:bid_id>/checks")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.input(CheckIn, arg_name="body")
@bp.doc(summary="Record a required check (chair)", responses=error_responses(400, 403, 404, 409))
@transactional
def evaluation_check(tender_id: int, bid_id: int, body: dict) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.record_check(
        auth.current_user, tender, bid_id, body["check"], body["passed"], body["reason"]
    )
    return _review(tender)


@bp.post("/tenders/<int:tender_id>/evaluation/bids/<int:bid_id>/justification-request")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.input(RequestIn, arg_name="body")
@bp.doc(
    summary="Ask the bidder of an abnormally low price to justify it (chair)",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def evaluation_request_justification(tender_id: int, bid_id: int, body: dict) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.request_justification(
        auth.current_user,
        tender,
        bid_id,
        body.get("days"),
        link=public_url("evaluations.justification", tender_id=tender.id),
    )
    return _review(tender)


@bp.post("/tenders/<int:tender_id>/evaluation/bids/<int:bid_id>/justification-decision")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.input(DecisionIn, arg_name="body")
@bp.doc(
    summary="Accept or reject a price justification (chair)",
    description="Rejected (or unanswered after the window): the bid is non-compliant.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def evaluation_decide_justification(tender_id: int, bid_id: int, body: dict) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.decide_justification(
        auth.current_user, tender, bid_id, body["accepted"], body["reason"]
    )
    return _review(tender)


@bp.post("/tenders/<int:tender_id>/evaluation/anonymity")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.input(AnonymityIn, arg_name="body")
@bp.doc(
    summary="Decide an anonymity question (chair)", responses=error_responses(400, 403, 404, 409)
)
@transactional
def evaluation_decide_anonymity(tender_id: int, body: dict) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.decide_anonymity(
        auth.current_user, tender, body["code"], body["accepted"], body["reason"]
    )
    return presentation.anonymity_data(tender)


@bp.post("/tenders/<int:tender_id>/evaluation/confirm")
@bp.auth_required(auth)
@roles_required(*PANEL)
@bp.doc(
    summary="Confirm the review: technical scoring opens (chair)",
    description="Refused (409) while an anonymity question, a required check or an "
    "abnormally low price is open.",
    responses=error_responses(403, 404, 409),
)
@transactional
def evaluation_confirm(tender_id: int) -> dict:
    tender = panel_tender(auth.current_user, tender_id)
    operations.confirm_review(auth.current_user, tender)
    return _review(tender)


def _justification_out(evaluated: EvaluatedBid) -> dict:
    return {
        "status": evaluated.low_price_status,
        "due_at": evaluated.low_price_due_at.isoformat() if evaluated.low_price_due_at else None,
        "justification": evaluated.low_price_justification,
        "attachments": [
            {k: a[k] for k in ("filename", "sha256", "size", "content_type")}
            for a in evaluated.low_price_attachments or []
        ],
        "submitted_at": evaluated.low_price_submitted_at.isoformat()
        if evaluated.low_price_submitted_at
        else None,
    }


def _own_request(tender: Tender) -> EvaluatedBid:
    evaluated = queries.justification_request(auth.current_user, tender)
    if evaluated is None:
        abort(404)
    return evaluated


@bp.get("/tenders/<int:tender_id>/evaluation/justification")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="The price-justification request to the caller's company (bidders)",
    responses=error_responses(403, 404),
)
def evaluation_justification(tender_id: int) -> dict:
    return _justification_out(_own_request(public_tender(tender_id)))


@bp.post("/tenders/<int:tender_id>/evaluation/justification")
@bp.auth_required(auth)
@roles_required(*BIDDERS)
@bp.doc(
    summary="Submit the price justification (bidders)",
    description="`multipart/form-data`: `text` (required) and up to 10 `files` (PDF, Word, "
    "Excel, ZIP, images, text; type checked on the content). Refused after the window "
    "(409 `late`): nothing is stored.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def evaluation_submit_justification(tender_id: int) -> tuple[dict, int]:
    tender = public_tender(tender_id)
    _own_request(tender)
    uploads = [
        Upload(f.filename or "", f.mimetype, f.stream)
        for f in request.files.getlist("files")
        if f and f.filename
    ]
    evaluated = operations.submit_justification(
        auth.current_user, tender, request.form.get("text", ""), uploads
    )
    return _justification_out(evaluated), 201
