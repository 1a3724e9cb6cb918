"""Loading a tender for its evaluation panel (see `app.tenders.access` for the others)."""

from __future__ import annotations

from flask import abort

from app.accounts.models import Role, User
from app.panels.operations import may_see_tender
from app.permissions import Permission, PermissionDenied, can
from app.tenders.access import public_tender
from app.tenders.models import Tender


def panel_tender(user: User, tender_id: int) -> Tender:
    """A panel member who accepted and declared no conflict; anyone else gets a 404, so an
    expert cannot learn which tenders exist."""
    tender = public_tender(tender_id)
    if not may_see_tender(user, tender):
        abort(404)
    return tender


def panel_or_overseer_tender(user: User, tender_id: int) -> Tender:
    """Panel members (as `panel_tender`), and staff, supervisors and administrators who may
    view the tender's centre (403 otherwise)."""
    if user.role == Role.EXPERT:
        return panel_tender(user, tender_id)
    tender = public_tender(tender_id)
    if not can(user, Permission.VIEW_TENDERS, tender.centre_id):
        raise PermissionDenied()
    return tender
