"""Loading a tender for its evaluation records (see `app.tenders.access` for the others).

Who sees a tender's records: staff of its centre, supervisors and admins, and the members
of its panel who took part (`operations.may_view`). The pages answer 403 to a role that
never sees records and to staff of another centre, 404 to an expert not on the panel (who
may not learn which tenders exist); the API, whose role gate comes first, answers 404 to
anyone who may not see them.
"""

from __future__ import annotations

from flask import abort

from app.accounts.models import Role, User
from app.records.operations import may_view
from app.tenders.access import existing_tender
from app.tenders.models import Tender

VIEW_ROLES = frozenset({Role.STAFF, Role.SUPERVISOR, Role.ADMIN, Role.EXPERT})


def record_tender(user: User, tender_id: int, *, conceal: bool = False) -> Tender:
    """The tender, if `user` may see its records: else 403 by role (unless `conceal`), 404
    if it does not exist, and 404 (an expert, or with `conceal` anyone) or 403."""
    if not conceal and user.role not in VIEW_ROLES:
        abort(403)
    tender = existing_tender(tender_id)
    if not may_view(user, tender):
        abort(404 if conceal or user.role == Role.EXPERT else 403)
    return tender
