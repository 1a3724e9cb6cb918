"""The clock's alerts page for the centre's staff (supervisors and administrators: all)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.models import Role
from app.clock import operations
from app.clock.service import alert_title
from app.core.access import restrict_blueprint
from app.core.boundary import run_operation
from app.core.forms import ButtonForm

bp = Blueprint("clock", __name__, url_prefix="/clock")
restrict_blueprint(bp, Role.STAFF, Role.SUPERVISOR, Role.ADMIN)


@bp.route("/alerts")
def alerts() -> str:
    include_resolved = request.args.get("all") == "1"
    return render_template(
        "clock/alerts.html",
        alerts=operations.visible_alerts(current_user, include_resolved),
        include_resolved=include_resolved,
        title_of=alert_title,
        retry_form=ButtonForm(),
        can_retry=current_user.role in (Role.STAFF, Role.ADMIN),
    )


@bp.route("/alerts/<int:alert_id>/retry", methods=["POST"])
def retry(alert_id: int) -> Response:
    if current_user.role not in (Role.STAFF, Role.ADMIN):
        abort(403)  # supervisors read, never act
    return run_operation(
        operations.retry_alert,
        alert_id,
        success=_("The step is being retried now."),
        back=url_for(".alerts"),
    )
