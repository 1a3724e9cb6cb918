"""Supervisors (and administrators) read across every centre: centres and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from app.accounts.models import Role
from app.admin.forms import LEVEL_LABELS
from app.audit import chain_head, verify_chain
from app.centres.operations import all_centres
from app.core.access import restrict_blueprint
from app.core.formatting import centre_time
from app.core.types import timestamp
from app.extensions import db
from app.permissions import Permission, require
from app.portal.queries import CATEGORIES
from app.supervision import explorer
from app.tenders.labels import STATUS_LABELS
from app.tenders.suspension import TenderSuspension, active_suspension

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


@bp.app_template_global("tender_suspension")
def tender_suspension(tender_id: int) -> TenderSuspension | None:
    """The suspension holding a tender, for the pages of every stage
    (templates/supervision/_suspension_banner.html)."""
    return active_suspension(tender_id)


def _when(stamp: str) -> str:
    """A snapshot's UTC timestamp, as people read it (the platform's zone, their language)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return centre_time(moment, None, "short")


@bp.route("/audit")
def audit() -> tuple[str, int] | str:
    require(current_user, Permission.VIEW_AUDIT)
    try:
        filters = explorer.parse_filters(request.args)
    except explorer.BadFilter:
        flash(_("Write dates as YYYY-MM-DD."), "error")
        filters = explorer.parse_filters({})
        status = 400
    else:
        status = 200
    page = db.paginate(explorer.search(filters), per_page=50, error_out=False)
    return (
        render_template(
            "supervision/audit.html",
            page=page,
            rows=explorer.rows(list(page.items)),
            filters=filters,
            centres=all_centres(),
            actions=explorer.known_actions(),
            head=chain_head(),
        ),
        status,
    )


@bp.route("/audit/verify", methods=["POST"])
def audit_verify() -> str:
    require(current_user, Permission.VIEW_AUDIT)
    broken = verify_chain()
    return render_template("supervision/audit_verify.html", broken=broken, head=chain_head())


# The routes of the other supervision pages attach to `bp` when their modules load.
from app.supervision import intervention, live, stats_views  # noqa: E402, F401
