"""Staff: templates and tenders of their centre."""

from __future__ import annotations

from flask import Blueprint

from app.accounts.models import Role
from app.core.access import restrict_blueprint

bp = Blueprint("tenders", __name__, url_prefix="/centre")
restrict_blueprint(bp, Role.STAFF, Role.ADMIN, Role.SUPERVISOR)
