"""Role gates for blueprints: one `before_request` per blueprint (tested for every route)."""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from app.extensions import login_manager
from app.permissions import PermissionDenied


def restrict_blueprint(bp: Blueprint, *roles: str) -> None:
    """Every view of `bp` needs a signed-in user with one of `roles`."""

    @bp.before_request
    def _check_role():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.role not in roles:
            raise PermissionDenied()
        return None

    bp.allowed_roles = frozenset(roles)
