"""The expert pool: staff list the pool they draw from (their centre's and the shared city
pool) and put experts in their centre's pool; administrators manage the city pool. Staff
edit only experts of their own centre (or in no pool yet), as on /panels/pool."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import abort

from app.accounts.models import User
from app.api import auth, bp, roles_required
from app.api.roles import TENDER_MANAGERS
from app.api.schemas import error_responses
from app.core.boundary import transactional
from app.extensions import db
from app.panels import operations
from app.panels.forms import specialties_matching
from app.panels.models import SPECIALTIES, ExpertProfile
from app.panels.operations import POOL_SCOPES, TIES_FILTERS
from app.permissions import Permission, can


class ExpertProfileIn(Schema):
    specialties = List(String(validate=OneOf(SPECIALTIES)), load_default=list)
    employer = String(load_default="", validate=Length(max=300))
    available = Boolean(load_default=True)
    city_pool = Boolean(
        load_default=False,
        metadata={"description": "The shared city pool (administrators only)."},
    )


class ExpertProfileOut(Schema):
    user_id = Integer()
    name = String()
    email = String()
    centre_id = Integer(allow_none=True, metadata={"description": "null: the city pool"})
    specialties = List(String())
    employer = String()
    available = Boolean()


def _profile(profile: ExpertProfile, user: User) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "name": user.full_name,
        "email": user.email,
        "centre_id": profile.centre_id,
        "specialties": sorted(profile.specialty_set),
        "employer": profile.employer,
        "available": profile.available,
    }


class PoolQuery(Schema):
    q = String(
        load_default="",
        validate=Length(max=200),
        metadata={
            "description": "Search in the name, e-mail and employer (case-insensitive), "
            "and the specialty keys or labels (in the request's language)."
        },
    )
    pool = String(
        load_default=None,
        validate=OneOf(POOL_SCOPES),
        metadata={"description": "`centre`: the caller's centre pool; `city`: the city pool."},
    )
    specialty = String(load_default=None, validate=OneOf(SPECIALTIES))
    available = Boolean(load_default=None, allow_none=True)
    ties = String(
        load_default=None,
        validate=OneOf(TIES_FILTERS),
        metadata={
            "description": "`declared`: experts who declared a relationship with some "
            "company; `none`: those who declared none."
        },
    )
    page = Integer(load_default=1, validate=Range(min=1))
    per_page = Integer(load_default=50, validate=Range(min=1, max=200))


class PoolExpertOut(ExpertProfileOut):
    """One expert of a pool page (its own schema name: ExpertProfileOut is a response)."""


class PoolPage(Schema):
    experts = List(Nested(PoolExpertOut))
    page = Integer()
    pages = Integer()
    total = Integer()


@bp.get("/experts/pool")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.input(PoolQuery, location="query", arg_name="query")
@bp.output(PoolPage)
@bp.doc(
    summary="The expert pool the caller draws from (staff, administrators)",
    description="Searched and filtered like the pool page, one page at a time (by name). "
    "An unknown filter value or a page below 1 answers 422 naming the parameter.",
    responses=error_responses(403),
)
def expert_pool(query: dict[str, Any]) -> dict[str, Any]:
    actor = auth.current_user
    if not can(actor, Permission.MANAGE_TENDERS, actor.centre_id):
        abort(403)
    select_ = operations.pool_query(
        actor,
        search=query["q"],
        scope=query["pool"],
        specialty=query["specialty"],
        available=query["available"],
        ties=query["ties"],
        search_specialties=specialties_matching(query["q"]),
    )
    page = db.paginate(select_, page=query["page"], per_page=query["per_page"], error_out=False)
    return {
        "experts": [_profile(profile, profile.user) for profile in page.items],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    }


@bp.put("/experts/<int:expert_id>/profile")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.input(ExpertProfileIn, arg_name="body")
@bp.output(ExpertProfileOut)
@bp.doc(
    summary="Put an expert in the caller's centre pool or the city pool, or edit the profile",
    description="Staff put experts in their own centre's pool and edit only experts of "
    "their centre (or in no pool yet): an expert of another centre's pool answers 403 "
    "`other_centre_expert`, one of the shared city pool 403 `city_pool_expert` "
    "(administrators only).",
    responses=error_responses(400, 403, 404),
)
@transactional
def expert_profile(expert_id: int, body: dict[str, Any]) -> dict[str, Any]:
    actor = auth.current_user
    expert = db.session.get(User, expert_id) or abort(404)
    profile = operations.save_expert_profile(
        actor,
        expert,
        centre_id=None if body["city_pool"] else actor.centre_id,
        specialties=body["specialties"],
        employer=body["employer"],
        available=body["available"],
    )
    return _profile(profile, expert)
