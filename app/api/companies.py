from __future__ import annotations

from typing import Any

from flask import abort, current_app

from app.accounts.operations import register_company
from app.api import auth, bp, roles_required
from app.api.roles import DECIDERS, VIEWERS
from app.api.schemas import (
    CompanyOut,
    CompanyPage,
    CompanyQuery,
    DecisionIn,
    SignUpIn,
    error_responses,
)
from app.companies import operations
from app.companies.models import Company
from app.core.boundary import transactional
from app.extensions import db, limiter


@bp.post("/companies")
@limiter.limit(lambda: current_app.config["RATELIMIT_SIGNUP"])
@bp.input(SignUpIn, arg_name="body")
@bp.output(CompanyOut, status_code=201)
@bp.doc(
    summary="Register a bidder company",
    description="Sends an e-mail confirmation link.",
    responses=error_responses(400),
)
@transactional
def sign_up(body: dict[str, Any]) -> Company:
    return register_company(**body).company


@bp.get("/companies")
@bp.auth_required(auth)
@roles_required(*VIEWERS)
@bp.input(CompanyQuery, location="query", arg_name="query")
@bp.output(CompanyPage)
@bp.doc(summary="Company registrations visible to the caller (staff: own centre)")
def list_companies(query: dict[str, Any]) -> dict[str, Any]:
    select_ = operations.companies_visible_to(auth.current_user, query["status"])
    per_page = max(1, min(query["per_page"], 200))
    page = db.paginate(select_, page=max(query["page"], 1), per_page=per_page, error_out=False)
    return {"companies": page.items, "page": page.page, "pages": page.pages, "total": page.total}


@bp.get("/companies/<int:company_id>")
@bp.auth_required(auth)
@roles_required(*VIEWERS)
@bp.output(CompanyOut)
@bp.doc(summary="One company registration")
def get_company(company_id: int) -> Company:
    return operations.get_company_for(auth.current_user, company_id) or abort(404)


@bp.post("/companies/<int:company_id>/approve")
@bp.auth_required(auth)
@roles_required(*DECIDERS)
@bp.input(DecisionIn, arg_name="body")
@bp.output(CompanyOut)
@bp.doc(
    summary="Approve a pending registration (staff of its centre)",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def approve_company(company_id: int, body: dict[str, Any]) -> Company:
    company = operations.get_company_for(auth.current_user, company_id) or abort(404)
    operations.approve_company(auth.current_user, company, body["reason"])
    return company


@bp.post("/companies/<int:company_id>/reject")
@bp.auth_required(auth)
@roles_required(*DECIDERS)
@bp.input(DecisionIn, arg_name="body")
@bp.output(CompanyOut)
@bp.doc(
    summary="Reject a pending registration with a reason (staff of its centre)",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def reject_company(company_id: int, body: dict[str, Any]) -> Company:
    company = operations.get_company_for(auth.current_user, company_id) or abort(404)
    operations.reject_company(auth.current_user, company, body["reason"])
    return company
