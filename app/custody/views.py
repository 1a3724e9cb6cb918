"""Key custodians set up their own key pair and keep their shares of tender keys."""

from __future__ import annotations

from flask import Blueprint

from app.accounts.models import Role
from app.core.access import restrict_blueprint

bp = Blueprint("custody", __name__, url_prefix="/custody")
restrict_blueprint(bp, Role.CUSTODIAN, Role.STAFF, Role.SUPERVISOR)
