"""Staff review company registrations of their centre; supervisors read all."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.models import Role, User
from app.companies import operations
from app.companies.forms import ApproveForm, RejectForm
from app.companies.models import Company, CompanyStatus
from app.core.access import restrict_blueprint
from app.core.boundary import attempt
from app.extensions import db
from app.permissions import Permission, require

bp = Blueprint("companies", __name__, url_prefix="/centre/companies")
restrict_blueprint(bp, Role.STAFF, Role.SUPERVISOR, Role.ADMIN)


@bp.route("/")
def index() -> str:
    status = request.args.get("status", CompanyStatus.PENDING)
    if status not in {*CompanyStatus, "all"}:
        abort(400)
    query = operations.companies_visible_to(current_user, None if status == "all" else status)
    page = db.paginate(query, per_page=25, error_out=False)
    return render_template("companies/index.html", page=page, status=status)


@bp.route("/<int:company_id>")
def show(company_id: int) -> str:
    company = operations.get_company_for(current_user, company_id) or abort(404)
    return render_template(
        "companies/show.html", company=company, approve=ApproveForm(), reject=RejectForm()
    )


def _company_to_decide(company_id: int) -> Company:
    """The company, if the user may decide on it: refused before the form is even read."""
    company = operations.get_company_for(current_user, company_id) or abort(404)
    require(current_user, Permission.DECIDE_COMPANY, centre_id=company.home_centre_id)
    return company


@bp.route("/<int:company_id>/approve", methods=["POST"])
def approve(company_id: int) -> Response:
    company = _company_to_decide(company_id)
    form = ApproveForm()
    if form.validate_on_submit():
        return _decide(company, operations.approve_company, form.reason.data or "")
    flash(_("The note is too long."), "error")
    return redirect(url_for(".show", company_id=company.id))


@bp.route("/<int:company_id>/reject", methods=["POST"])
def reject(company_id: int) -> Response:
    company = _company_to_decide(company_id)
    form = RejectForm()
    if form.validate_on_submit():
        return _decide(company, operations.reject_company, form.reason.data)
    flash(_("Give the company a reason for the rejection."), "error")
    return redirect(url_for(".show", company_id=company.id))


def _decide(
    company: Company, decide: Callable[[User, Company, str], None], reason: str
) -> Response:
    if not attempt(decide, current_user, company, reason).ok:
        return redirect(url_for(".show", company_id=company.id))
    flash(_("The decision is recorded and the company is notified."), "success")
    return redirect(url_for(".index"))
