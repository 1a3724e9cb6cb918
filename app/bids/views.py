"""Bidders submit, replace and withdraw sealed bids; they download their receipts."""

from __future__ import annotations

from flask import Blueprint

from app.accounts.models import Role
from app.core.access import restrict_blueprint

bp = Blueprint("bids", __name__, url_prefix="/bids")
restrict_blueprint(bp, Role.BIDDER)
