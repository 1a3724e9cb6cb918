"""Pages of the evaluations area."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("evaluations", __name__, url_prefix="/evaluations")
