"""Red flags for supervisors (their centre hierarchy) and administrators: list, read,
review. Never reachable by bidders, experts or the public (403)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf

from app.api import auth, bp, roles_required
from app.api.roles import SUPERVISION
from app.api.schemas import error_responses
from app.core.boundary import transactional
from app.extensions import db
from app.supervision import flags
from app.supervision.flag_models import FlagKind, FlagStatus

REVIEW_ACTIONS = [FlagStatus.ACKNOWLEDGED, FlagStatus.DISMISSED, FlagStatus.ESCALATED]


class FlagQuery(Schema):
    status = String(load_default=None, validate=OneOf([s.value for s in FlagStatus]))
    kind = String(load_default=None, validate=OneOf([k.value for k in FlagKind]))
    rule = String(load_default=None, validate=OneOf(sorted(flags.RULE_TITLES)))
    tender = Integer(load_default=None)
    centre = Integer(load_default=None)
    page = Integer(load_default=1)
    per_page = Integer(load_default=50)


class FlagOut(Schema):
    id = Integer()
    kind = String(metadata={"description": "price, source or market"})
    rule = String(metadata={"description": "the rule's code, e.g. identical_prices (R028)"})
    title = String()
    score = String(metadata={"description": "decimal string in [0, 1]"})
    threshold = String()
    evidence = Dict(keys=String(), values=String())
    message = String(metadata={"description": "the evidence in English"})
    status = String(metadata={"description": "open, acknowledged, dismissed or escalated"})
    review_reason = String()
    reviewed_by = Integer(allow_none=True)
    reviewed_at = String(allow_none=True)
    tender_id = Integer(allow_none=True)
    centre_id = Integer(allow_none=True)
    competition = String()
    link = String(metadata={"description": "the flag's page for supervisors"})
    tender_link = String(allow_none=True)
    raised_at = String()
    updated_at = String()


class FlagItem(FlagOut):
    """A flag in a page of flags (its own name in the OpenAPI document)."""


class FlagPage(Schema):
    flags = List(Nested(FlagItem))
    page = Integer()
    pages = Integer()
    total = Integer()


class FlagReviewIn(Schema):
    action = String(required=True, validate=OneOf([a.value for a in REVIEW_ACTIONS]))
    reason = String(load_default="", validate=Length(max=flags.MAX_REASON))


@bp.get("/supervision/flags/<int:flag_id>")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.output(FlagOut)
@bp.doc(summary="One red flag with its evidence", responses=error_responses(403, 404))
def get_flag(flag_id: int) -> dict[str, Any]:
    return flags.flag_json(flags.visible_flag(auth.current_user, flag_id))


@bp.post("/supervision/flags/<int:flag_id>/review")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.input(FlagReviewIn, arg_name="body")
@bp.output(FlagOut)
@bp.doc(
    summary="Acknowledge, dismiss (reason required) or escalate a red flag (audited)",
    description="Dismissed is final; an escalated flag can still be dismissed. 409 when the "
    "flag's status does not allow the action.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def review_flag(flag_id: int, body: dict[str, Any]) -> dict[str, Any]:
    flag = flags.visible_flag(auth.current_user, flag_id)
    flags.review_flag(auth.current_user, flag, body["action"], body["reason"])
    return flags.flag_json(flag)


@bp.get("/supervision/flags")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.input(FlagQuery, location="query", arg_name="query")
@bp.output(FlagPage)
@bp.doc(
    summary="Red flags in the caller's centre hierarchy, highest score first",
    description="Filter by status, kind, rule, tender and centre. Supervisors and "
    "administrators only; a flag never changes a tender.",
    responses=error_responses(403),
)
def list_flags(query: dict[str, Any]) -> dict[str, Any]:
    select_ = flags.flags_query(
        auth.current_user,
        status=query["status"],
        kind=query["kind"],
        rule=query["rule"],
        tender_id=query["tender"],
        centre_id=query["centre"],
    )
    per_page = max(1, min(query["per_page"], 200))
    page = db.paginate(select_, page=max(query["page"], 1), per_page=per_page, error_out=False)
    return {
        "flags": [flags.flag_json(f) for f in page.items],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    }
