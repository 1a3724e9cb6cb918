from __future__ import annotations

from typing import Any

from flask import abort

from app.api import auth, bp, roles_required
from app.api.roles import ADMIN
from app.api.schemas import CentreIn, CentreOut, error_responses
from app.centres import operations
from app.centres.models import TradingCentre
from app.core.boundary import transactional
from app.extensions import db


@bp.get("/centres")
@bp.output(CentreOut(many=True))
@bp.doc(summary="List trading centres (public)")
def list_centres() -> list[TradingCentre]:
    return operations.all_centres()


@bp.get("/centres/<int:centre_id>")
@bp.output(CentreOut)
@bp.doc(summary="One trading centre (public)")
def get_centre(centre_id: int) -> TradingCentre:
    return db.session.get(TradingCentre, centre_id) or abort(404)


@bp.post("/centres")
@bp.auth_required(auth)
@roles_required(*ADMIN)
@bp.input(CentreIn, arg_name="body")
@bp.output(CentreOut, status_code=201)
@bp.doc(
    summary="Create a trading centre (administrators)",
    responses=error_responses(400, 403, 409),
)
@transactional
def create_centre(body: dict[str, Any]) -> TradingCentre:
    return operations.create_centre(auth.current_user, **body)
