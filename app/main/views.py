"""Public pages: home, language choice, health."""

from __future__ import annotations

from flask import Blueprint, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import text
from werkzeug.wrappers import Response

from app.admin.forms import ROLE_LABELS
from app.centres.operations import all_centres
from app.core.formatting import centre_time, centre_timezone
from app.core.urls import safe_next
from app.errors import abort_with
from app.extensions import db
from app.i18n import LANGUAGE_COOKIE, normalise_language
from app.main import stages
from app.main.start import start_page
from app.web import redis_available

bp = Blueprint("main", __name__)


@bp.route("/")
def home() -> str:
    return render_template("main/home.html", centres=all_centres())


@bp.app_context_processor
def _stage_helpers() -> dict:
    """Where a tender stands, for the pages of every stage (see app.main.stages)."""
    return {
        "tender_timeline": stages.timeline,
        "failure_reason": stages.failure_reason,
        "staff_links": stages.staff_links,
        "next_action": stages.next_action,
        "centre_time": centre_time,
        "centre_zone": lambda centre: centre_timezone(centre).key,
    }


@bp.route("/start")
@login_required
def start() -> str | Response:
    """What needs the signed-in person's action now; supervisors start on their dashboard."""
    page = start_page(current_user)
    if page is None:
        return redirect(url_for("supervision.dashboard"))
    return render_template("main/start.html", page=page, role_labels=ROLE_LABELS)


@bp.route("/language/<code>")
def set_language(code: str) -> Response:
    language = normalise_language(code)
    if language is None:
        abort_with(404, _("This language is not available. Choose English, 한국어 or 简体中文."))
    response = make_response(redirect(safe_next(request.args.get("next"), url_for(".home"))))
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
    )
    return response


@bp.route("/healthz")
def health() -> Response:
    """Liveness for load balancers: the database must answer; Redis may be degraded."""
    db.session.execute(text("SELECT 1"))
    return jsonify(database="ok", redis="ok" if redis_available() else "degraded")
