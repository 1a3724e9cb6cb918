"""Bidders: registrations for tenders, enquiries, the company profile, notifications."""

from __future__ import annotations

from flask import Blueprint

from app.accounts.models import Role
from app.core.access import restrict_blueprint

bp = Blueprint("bidder", __name__, url_prefix="/bidder")
restrict_blueprint(bp, Role.BIDDER)
