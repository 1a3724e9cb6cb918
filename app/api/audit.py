from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from flask import request
from flask_babel import lazy_gettext as _l

from app.api import auth, bp, roles_required
from app.api.roles import SUPERVISION
from app.api.schemas import AuditHead, AuditVerifyOut, error_responses
from app.audit import chain_head, verify_chain
from app.core.errors import OperationError
from app.core.types import timestamp
from app.extensions import db
from app.permissions import Permission, require
from app.supervision import explorer


@bp.get("/audit/head")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.output(AuditHead)
@bp.doc(summary="The newest event of the audit chain (supervisors, administrators)")
def audit_head() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_AUDIT)
    seq, head = chain_head()
    return {"seq": seq, "hash": head}


@bp.get("/audit/verify")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.output(AuditVerifyOut)
@bp.doc(summary="Recompute the audit chain and name the first broken event")
def audit_verify() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_AUDIT)
    broken = verify_chain()
    seq, head = chain_head()
    return {
        "ok": broken is None,
        "seq": broken.seq if broken else None,
        "reason": broken.reason if broken else None,
        "head": {"seq": seq, "hash": head},
    }


class AuditQuery(Schema):
    """The audit explorer's filters (read by `explorer.parse_filters`, as on the page)."""

    tender = String(load_default="", metadata={"description": "the tender's id or reference"})
    actor = String(
        load_default="",
        metadata={"description": "part of a person's name or e-mail (never a bidder's)"},
    )
    centre = String(load_default="", metadata={"description": "a centre's code"})
    action = String(load_default="", metadata={"description": "an action or its prefix"})
    from_ = String(
        load_default="",
        data_key="from",
        metadata={"description": "first day, YYYY-MM-DD (the platform's time zone)"},
    )
    to = String(load_default="", metadata={"description": "last day, YYYY-MM-DD"})
    page = Integer(load_default=1)
    per_page = Integer(load_default=50)


class AuditEventItem(Schema):
    seq = Integer()
    occurred_at = String(metadata={"description": "ISO 8601, UTC"})
    action = String()
    label = String(metadata={"description": "the action in the caller's language"})
    actor = String(
        metadata={
            "description": "the person's name; a bidder's events about a tender whose bids "
            "are still sealed say only 'Bidder'; empty for the system"
        }
    )
    role = String(metadata={"description": "the actor's role in words (empty when hidden)"})
    centre = String(metadata={"description": "the centre's code"})
    tender_id = Integer(allow_none=True)
    hash = String()


class AuditEventPage(Schema):
    events = List(Nested(AuditEventItem))
    page = Integer()
    pages = Integer()
    total = Integer()


def audit_row_json(row: explorer.Row) -> dict[str, Any]:
    return {
        "seq": row.event.seq,
        "occurred_at": timestamp(row.event.occurred_at),
        "action": row.event.action,
        "label": row.label,
        "actor": row.actor,
        "role": row.role,
        "centre": row.centre,
        "tender_id": row.tender_id,
        "hash": row.event.hash,
    }


@bp.get("/supervision/audit")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditEventPage)
@bp.doc(
    summary="Audit events found by tender, person, centre, action and time, newest first",
    description="The audit explorer's search (`/supervision/audit`) with the same filters "
    "and privacy: names and translated labels; a bidder is found through its tender only, "
    "never by name, and its events about a tender whose bids are still sealed name no one. "
    "An unknown tender matches nothing; a date not written YYYY-MM-DD answers 400.",
    responses=error_responses(400, 403),
)
def search_audit(query: dict[str, Any]) -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_AUDIT)
    try:
        filters = explorer.parse_filters(request.args)
    except explorer.BadFilter:
        raise OperationError(_l("Write dates as YYYY-MM-DD."), "bad_date") from None
    per_page = max(1, min(query["per_page"], 200))
    page = db.paginate(
        explorer.search(filters), page=max(query["page"], 1), per_page=per_page, error_out=False
    )
    return {
        "events": [audit_row_json(row) for row in explorer.rows(list(page.items))],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    }
