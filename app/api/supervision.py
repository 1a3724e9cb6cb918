"""API: a supervisor's intervention in a tender (suspension under dual control)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import String
from apiflask.validators import Length, OneOf
from flask import request

from app.accounts.models import Role
from app.api import auth, bp, roles_required
from app.api.schemas import error_responses
from app.api.tenders import tender_scope
from app.core.boundary import transactional
from app.permissions import Permission, require
from app.supervision import monitoring, statistics
from app.tenders import suspension as ops
from app.tenders.access import public_tender, visible_tender

SUPERVISORS = (Role.SUPERVISOR,)


class SuspendIn(Schema):
    reason = String(required=True, validate=Length(min=1, max=ops.MAX_REASON))


class ResumeIn(Schema):
    kind = String(load_default=ops.ResumeKind.RESUME.value, validate=OneOf(list(ops.ResumeKind)))
    note = String(required=True, validate=Length(min=1, max=ops.MAX_REASON))


def suspensions_data(tender) -> dict[str, Any]:
    active = ops.active_suspension(tender.id)
    return {
        "tender": tender.id,
        "suspended": active is not None,
        "current": ops.request_state(active),
        "suspensions": [ops.request_state(s) for s in ops.suspensions_of(tender)],
    }


@bp.get("/tenders/<int:tender_id>/suspensions")
@bp.doc(
    summary="The tender's suspensions by the supervision authority (public)",
    description="`suspended` says whether one holds now; each suspension has its public "
    "reason, the resumption asked (`request`: `resume` or `reevaluate`, with its note) and, "
    "once a second supervisor approved, when it was lifted and how long it lasted.",
    responses=error_responses(404),
)
def tender_suspensions(tender_id: int) -> dict[str, Any]:
    return suspensions_data(public_tender(tender_id))


def _act(tender_id: int, operation, *args: Any) -> dict[str, Any]:
    tender = visible_tender(auth.current_user, tender_id)
    operation(auth.current_user, tender, *args)
    return suspensions_data(tender)


@bp.post("/tenders/<int:tender_id>/suspension")
@bp.auth_required(auth)
@roles_required(*SUPERVISORS)
@tender_scope(Permission.SUPERVISE_TENDERS)
@bp.input(SuspendIn, arg_name="body")
@bp.doc(
    summary="Suspend the tender (supervisors)",
    description="Before the award, with a public reason. Bids stay sealed; uploads and stage "
    "actions answer 409 `suspended` until a second supervisor approves the resumption.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def suspend_tender(tender_id: int, body: dict) -> tuple[dict[str, Any], int]:
    return _act(tender_id, ops.suspend_tender, body["reason"]), 201


@bp.post("/tenders/<int:tender_id>/suspension/resume-request")
@bp.auth_required(auth)
@roles_required(*SUPERVISORS)
@tender_scope(Permission.SUPERVISE_TENDERS)
@bp.input(ResumeIn, arg_name="body")
@bp.doc(
    summary="Ask to resume the tender, or to resume it with a re-evaluation (supervisors)",
    description="A second supervisor, who neither suspended the tender nor asked, approves.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def request_resumption(tender_id: int, body: dict) -> dict[str, Any]:
    return _act(tender_id, ops.request_resumption, body["kind"], body["note"])


@bp.post("/tenders/<int:tender_id>/suspension/resume-request/withdraw")
@bp.auth_required(auth)
@roles_required(*SUPERVISORS)
@tender_scope(Permission.SUPERVISE_TENDERS)
@bp.doc(
    summary="Withdraw a resumption request (supervisors); the tender stays suspended",
    responses=error_responses(403, 404, 409),
)
@transactional
def withdraw_resumption(tender_id: int) -> dict[str, Any]:
    return _act(tender_id, ops.withdraw_request)


@bp.post("/tenders/<int:tender_id>/suspension/approve")
@bp.auth_required(auth)
@roles_required(*SUPERVISORS)
@tender_scope(Permission.SUPERVISE_TENDERS)
@bp.doc(
    summary="Approve the resumption (a second supervisor)",
    description="403 `same_supervisor` for the supervisor who suspended the tender or asked "
    "to resume it. The deadlines still ahead when the tender stopped move by the time it "
    "stood still; a `reevaluate` request sends the evaluation back to its review.",
    responses=error_responses(403, 404, 409),
)
@transactional
def approve_resumption(tender_id: int) -> dict[str, Any]:
    return _act(tender_id, ops.approve_resumption)


@bp.get("/supervision/dashboard")
@bp.auth_required(auth)
@roles_required(Role.SUPERVISOR, Role.ADMIN)
@bp.doc(
    summary="The supervisors' dashboard (supervisors: their jurisdiction; administrators: all)",
    description="Query: `centre` (a centre code within the jurisdiction, with the centres "
    "below it), `category`, `period` (`today`, `7d`, `30d`, `365d`: tenders published "
    "then). Tenders by stage, today's bid deadlines and openings, envelope *counts* of the "
    "tenders taking bids (never who bid before the opening), openings in progress, "
    "evaluations waiting, open objections, the clock's open alerts, suspensions, and the "
    "figures per centre. The page's live stream sends the same object.",
    responses=error_responses(400, 403, 404),
)
def supervision_dashboard() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_ALL_CENTRES)
    scope = monitoring.scope_for(auth.current_user, **monitoring.filters_from(request.args))
    return monitoring.snapshot(scope)


@bp.get("/supervision/statistics")
@bp.auth_required(auth)
@roles_required(Role.SUPERVISOR, Role.ADMIN)
@bp.doc(
    summary="Statistics of the centres overseen (the statistics page's tables)",
    description="The same query as the dashboard (`centre`, `category`, `period`). Three "
    "tables, each with its columns and rows: `monthly` (tenders and value by centre and "
    "month), `bids` (tenders by number of bids), `centres` (bids per tender, single-bid "
    "share, savings against budget, days from publication to award, failure, re-tender and "
    "objection rates, per centre and in total). Money and rates are decimal strings; null "
    "where there is nothing to compute.",
    responses=error_responses(400, 403, 404),
)
def supervision_statistics() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_ALL_CENTRES)
    scope = monitoring.scope_for(auth.current_user, **monitoring.filters_from(request.args))
    tables = statistics.compute(scope)
    return {"filters": scope.args(), "tables": {k: t.json() for k, t in tables.items()}}
