"""API: blind technical scoring, as the scoring pages offer it.

An expert's sheet speaks of bids by technical code only: no bid id, bidder, price or row
id of any kind before unblinding. The chair's progress shows counts and lock state, and the
scores only once every sheet is locked. Scores are decimal strings."""

from __future__ import annotations

from datetime import datetime

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length, Range
from flask import Response, url_for

from app.accounts.models import Role
from app.api import auth, bp, roles_required
from app.api.roles import VIEWERS
from app.api.schemas import error_responses
from app.core.boundary import transactional
from app.evaluations import operations, queries
from app.evaluations.queries import ResultLine, Results
from app.evaluations.scoring_file import expert_id
from app.evaluations.scoring_views import PDF_CSP, send_technical_part
from app.extensions import talisman
from app.tenders.access import public_tender
from app.tenders.models import Tender

EXPERTS = (Role.EXPERT,)
_ERRORS = {
    400: "Refused (`error` says why: `invalid_score` with `detail` per field, `incomplete`, "
    "`reason_missing`, `no_reason`); nothing is stored.",
    403: "Not an expert, or not the chair for the chair's actions.",
    404: "No such tender, or not on its panel (accepted, no conflict declared).",
    409: "Not at this stage (`stage`), sheet locked (`sheet_locked`), not every sheet "
    "locked (`not_all_locked`), outliers without reason (`outlier_reasons`).",
}


def _errors(*codes: int) -> dict:
    return error_responses(*codes, texts=_ERRORS)


class ScoreIn(Schema):
    code = String(required=True, validate=Length(max=16))
    criterion = String(required=True, validate=Length(max=64))
    score = String(
        required=True,
        validate=Length(max=32),
        metadata={"description": 'A decimal string ("12.5"); "" clears a draft score.'},
    )
    reason = String(load_default="", validate=Length(max=4000))


class ScoresIn(Schema):
    scores = List(Nested(ScoreIn), required=True, validate=Length(max=5000))


class OutlierReasonIn(Schema):
    code = String(required=True, validate=Length(max=16))
    criterion = String(required=True, validate=Length(max=64))
    reason = String(required=True, validate=Length(min=1, max=4000))


class ReopenIn(Schema):
    seat = Integer(required=True, strict=True, validate=Range(min=1))
    reason = String(required=True, validate=Length(min=1, max=4000))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _sheet_json(view: operations.SheetView) -> dict:
    tender = view.tender
    return {
        "tender": {"id": tender.id, "reference": tender.reference, "title": tender.title},
        "stage": view.evaluation.stage,
        "seat": view.member.position,
        "locked_at": _iso(view.sheet.locked_at if view.sheet else None),
        "reopened_count": view.sheet.reopened_count if view.sheet else 0,
        "all_locked": view.all_locked,
        "filled": view.filled,
        "total": view.total,
        "criteria": [
            {
                "key": c.key,
                "title": c.title,
                "max_points": format(c.max_points, "f"),
                "step": format(c.step, "f"),
            }
            for c in view.criteria
        ],
        "bids": [
            {
                "code": b.code,
                "document_url": url_for("api.scoring_document", tender_id=tender.id, code=b.code)
                if b.has_document
                else None,
                "scores": {
                    key: {
                        "score": s.score,
                        "reason": s.reason,
                        "outlier": s.outlier,
                        "outlier_reason": s.outlier_reason,
                    }
                    for key, s in b.scores.items()
                },
            }
            for b in view.bids
        ],
    }


def _sheet_after(tender: Tender) -> dict:
    """The caller's sheet after an action on it."""
    return _sheet_json(operations.my_sheet(auth.current_user, tender))


@bp.get("/tenders/<int:tender_id>/scoring/sheet")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="My technical score sheet (panel members)",
    description="Bids by technical code only, the criteria, my scores and reasons, the "
    "outlier flags once every sheet is locked.",
    responses=_errors(403, 404),
)
def scoring_get_sheet(tender_id: int) -> dict:
    return _sheet_json(operations.my_sheet(auth.current_user, public_tender(tender_id)))


@bp.get("/tenders/<int:tender_id>/scoring/bids/<code>/document")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@talisman(content_security_policy=PDF_CSP)
@bp.doc(
    summary="The stripped technical part of a bid, by its code (panel members)",
    description="A PDF inline under the neutral name `<code>.pdf`, from the scoring stage on.",
    responses=_errors(403, 404),
)
def scoring_document(tender_id: int, code: str) -> Response:
    tender = public_tender(tender_id)
    return send_technical_part(operations.technical_part(auth.current_user, tender, code))


@bp.put("/tenders/<int:tender_id>/scoring/sheet")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.input(ScoresIn, arg_name="body")
@bp.doc(
    summary="Save draft scores (panel members)",
    description="Partial sheets are allowed. A score is a multiple of the criterion's step "
    "within [0, max]; 0 and max need a `reason`. One bad entry refuses the whole batch "
    "(400 `invalid_score`, `detail` per field).",
    responses=_errors(400, 403, 404, 409),
)
@transactional
def scoring_put_sheet(tender_id: int, body: dict) -> dict:
    tender = public_tender(tender_id)
    entries = [
        operations.ScoreEntry(s["code"], s["criterion"], s["score"], s.get("reason", ""))
        for s in body["scores"]
    ]
    operations.save_scores(auth.current_user, tender, entries)
    return _sheet_after(tender)


@bp.post("/tenders/<int:tender_id>/scoring/sheet/lock")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="Submit and lock my sheet (panel members)",
    description="Every criterion of every bid scored, reasons present. Audited.",
    responses=_errors(400, 403, 404, 409),
)
@transactional
def scoring_lock_sheet(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    operations.lock_sheet(auth.current_user, tender)
    return _sheet_after(tender)


@bp.post("/tenders/<int:tender_id>/scoring/outlier-reasons")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.input(OutlierReasonIn, arg_name="body")
@bp.doc(
    summary="Give the reason for one of my flagged scores (panel members)",
    responses=_errors(400, 403, 404, 409),
)
@transactional
def scoring_outlier_reason(tender_id: int, body: dict) -> dict:
    tender = public_tender(tender_id)
    operations.give_outlier_reason(
        auth.current_user, tender, body["code"], body["criterion"], body["reason"]
    )
    return _sheet_after(tender)


def _progress_json(tender: Tender) -> dict:
    actor = auth.current_user
    members = operations.progress(actor, tender)
    out = {
        "stage": queries.evaluation_of(tender).stage,
        "all_locked": queries.all_locked(tender),
        "members": [
            {
                "seat": p.member.position,
                "expert": expert_id(p.member),
                "name": p.member.user.full_name,
                "filled": p.filled,
                "total": p.total,
                "locked_at": _iso(p.locked_at),
                "reopened_count": p.reopened_count,
            }
            for p in members
        ],
    }
    if out["all_locked"]:
        data = operations.panel_scores(actor, tender)
        out["scores"] = {
            code: {
                key: {
                    e: {
                        "score": s.score,
                        "reason": s.reason,
                        "outlier": s.outlier,
                        "outlier_reason": s.outlier_reason,
                    }
                    for e, s in by_expert.items()
                }
                for key, by_expert in by_criterion.items()
            }
            for code, by_criterion in data.scores.items()
        }
        out["open_outliers"] = [
            {"expert": e, "code": c, "criterion": k} for e, c, k in queries.open_outliers(tender)
        ]
    return out


@bp.get("/tenders/<int:tender_id>/scoring/progress")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="The panel's progress (the chair)",
    description="Per member: scores given, lock time, reopenings. `scores` (by code, "
    "criterion and expert id) appears only once every sheet is locked.",
    responses=_errors(403, 404),
)
def scoring_progress(tender_id: int) -> dict:
    return _progress_json(public_tender(tender_id))


@bp.post("/tenders/<int:tender_id>/scoring/reopen")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.input(ReopenIn, arg_name="body")
@bp.doc(
    summary="Reopen a member's locked sheet (the chair)",
    description="With a reason, recorded in the audit log; the member can then change "
    "scores and must lock again.",
    responses=_errors(400, 403, 404, 409),
)
@transactional
def scoring_reopen(tender_id: int, body: dict) -> dict:
    tender = public_tender(tender_id)
    operations.reopen_sheet(auth.current_user, tender, body["seat"], body["reason"])
    return _progress_json(tender)


def _results_json(outcome: Results) -> dict:
    evaluation = outcome.evaluation

    def line_json(line: ResultLine) -> dict:
        d = line.data
        return {
            "rank": line.rank,
            "code": line.code,
            "bidder_id": line.bidder,
            "name": line.company.name,
            "price": d.get("price"),
            "compliant": d.get("compliant"),
            "price_score": d.get("price_score"),
            "commercial_score": (d.get("commercial_score") or {}).get("total"),
            "technical_score": (d.get("technical_score") or {}).get("total"),
            "total": d.get("total"),
        }

    return {
        "stage": evaluation.stage,
        "unblinded_at": _iso(evaluation.unblinded_at),
        "finalised_at": _iso(evaluation.finalised_at),
        "scoring_sha256": evaluation.scoring_sha256,
        "outcome": outcome.document["result"]["outcome"] if not outcome.lots else None,
        "candidates": [line_json(line) for line in outcome.candidates],
        "ranking": [line_json(line) for line in outcome.lines],
        # A tender of several lots: each lot's outcome, candidates, ranking and winner under
        # the award across lots (whose input, result and trace follow).
        "lots": [
            {
                "lot": lot.lot,
                "title": lot.title,
                "outcome": lot.document["result"]["outcome"],
                "candidates": [line_json(line) for line in lot.candidates],
                "ranking": [line_json(line) for line in lot.lines],
                "winner": None if lot.winner is None else line_json(lot.winner),
            }
            for lot in outcome.lots
        ],
        "award": outcome.award,
    }


@bp.post("/tenders/<int:tender_id>/scoring/unblind")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="Reveal the identities and rank the bids (the chair)",
    description="Once every sheet is locked and every outlier has its reason: one audited "
    "event, the complete scoring file stored, the ranking and top three proposed.",
    responses=_errors(403, 404, 409),
)
@transactional
def scoring_unblind(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    operations.unblind(auth.current_user, tender)
    return _results_json(operations.results(auth.current_user, tender))


@bp.post("/tenders/<int:tender_id>/scoring/draw-lots")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="Draw lots for bids still tied for a candidate's place (the chair)",
    description="Each tied group is ordered by HMAC-SHA256(key = the scoring file's input "
    "hash, message = bidder id); the ranking is recomputed and the draw audited.",
    responses=_errors(403, 404, 409),
)
@transactional
def scoring_draw_lots(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    operations.draw_lots(auth.current_user, tender)
    return _results_json(operations.results(auth.current_user, tender))


@bp.post("/tenders/<int:tender_id>/scoring/finalise")
@bp.auth_required(auth)
@roles_required(*EXPERTS)
@bp.doc(
    summary="Finalise the evaluation (the chair)",
    description="Stage FINALISED; the signed evaluation record is requested.",
    responses=_errors(403, 404, 409),
)
@transactional
def scoring_finalise(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    operations.finalise(auth.current_user, tender)
    return _results_json(operations.results(auth.current_user, tender))


@bp.get("/tenders/<int:tender_id>/scoring/results")
@bp.auth_required(auth)
@roles_required(*EXPERTS, *VIEWERS)
@bp.doc(
    summary="The ranking after unblinding (panel members; staff of the centre)",
    responses=_errors(403, 404, 409),
)
def scoring_results(tender_id: int) -> dict:
    tender = public_tender(tender_id)
    actor = auth.current_user
    if actor.role == Role.EXPERT:
        return _results_json(operations.results(actor, tender))
    return _results_json(operations.results_for_staff(actor, tender))
