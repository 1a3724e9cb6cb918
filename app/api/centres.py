from __future__ import annotations

from flask import abort

from app.api import auth, bp, roles_required
from app.api.roles import ADMIN
from app.api.schemas import CentreIn, CentreOut
from app.centres import operations
from app.centres.models import TradingCentre
from app.extensions import db


@bp.get("/centres")
@bp.output(CentreOut(many=True))
@bp.doc(summary="List trading centres (public)")
def list_centres():
    return operations.all_centres()


@bp.get("/centres/<int:centre_id>")
@bp.output(CentreOut)
@bp.doc(summary="One trading centre (public)")
def get_centre(centre_id: int):
    return db.session.get(TradingCentre, centre_id) or abort(404)


@bp.post("/centres")
@bp.auth_required(auth)
@roles_required(*ADMIN)
@bp.input(CentreIn, arg_name="body")
@bp.output(CentreOut, status_code=201)
@bp.doc(summary="Create a trading centre (administrators)")
def create_centre(body):
    centre = operations.create_centre(auth.current_user, **body)
    db.session.commit()
    return centre
