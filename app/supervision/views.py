"""Supervisors (and administrators) read across every centre: centres and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from app.accounts.models import Role
from app.admin.forms import LEVEL_LABELS
from app.audit import AuditEvent, chain_head, verify_chain
from app.core.access import restrict_blueprint
from app.core.formatting import centre_time
from app.core.types import timestamp
from app.extensions import db
from app.permissions import Permission, require
from app.portal.queries import CATEGORIES
from app.tenders.labels import STATUS_LABELS

bp = Blueprint("supervision", __name__, url_prefix="/supervision")
restrict_blueprint(bp, Role.SUPERVISOR, Role.ADMIN)


@bp.context_processor
def supervision_helpers() -> dict[str, Any]:
    return {
        "CATEGORIES": CATEGORIES,
        "STATUS_LABELS": STATUS_LABELS,
        "centre_time": centre_time,
        "iso": timestamp,
        "LEVELS": LEVEL_LABELS,
        "when": _when,
    }


def _when(stamp: str) -> str:
    """A snapshot's UTC timestamp, as people read it (the platform's zone, their language)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return centre_time(moment, None, "short")


@bp.route("/audit")
def audit() -> str:
    require(current_user, Permission.VIEW_AUDIT)
    query = select(AuditEvent).order_by(AuditEvent.seq.desc())
    action = request.args.get("action", "").strip()[:64]
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    centre = request.args.get("centre", type=int)
    if centre:
        query = query.where(AuditEvent.centre_id == centre)
    page = db.paginate(query, per_page=50, error_out=False)
    return render_template(
        "supervision/audit.html", page=page, action=action, centre=centre, head=chain_head()
    )


@bp.route("/audit/verify", methods=["POST"])
def audit_verify() -> str:
    require(current_user, Permission.VIEW_AUDIT)
    broken = verify_chain()
    return render_template("supervision/audit_verify.html", broken=broken, head=chain_head())


# The routes of the other supervision pages attach to `bp` when their modules load.
from app.supervision import intervention, live  # noqa: E402, F401
