"""Who may do what. Every service function calls `require` exactly once, first.

Views and API endpoints also restrict by role for a clean 403 before any work, but the
operation's own check is the one that counts: a new entry point cannot forget it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from werkzeug.exceptions import Forbidden

from app.accounts.models import Role


class Permission(StrEnum):
    VIEW_COMPANIES = "view_companies"
    DECIDE_COMPANY = "decide_company"
    MANAGE_CENTRES = "manage_centres"
    MANAGE_USERS = "manage_users"
    VIEW_AUDIT = "view_audit"
    VIEW_ALL_CENTRES = "view_all_centres"
    MANAGE_TEMPLATES = "manage_templates"
    MANAGE_TENDERS = "manage_tenders"
    VIEW_TENDERS = "view_tenders"
    TAKE_PART = "take_part"
    REVIEW_FLAGS = "review_flags"  # red flags: supervisors (within their centres), admins
    # Suspend a tender and decide its resumption (dual control: app.tenders.suspension).
    SUPERVISE_TENDERS = "supervise_tenders"


# Permissions a role holds; centre-scoped ones also need the object's centre to match.
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    # Administrators run the platform; intervening in a tender is the supervisors' duty.
    Role.ADMIN: frozenset(Permission) - {Permission.TAKE_PART, Permission.SUPERVISE_TENDERS},
    Role.SUPERVISOR: frozenset(
        {
            Permission.VIEW_COMPANIES,
            Permission.VIEW_AUDIT,
            Permission.VIEW_ALL_CENTRES,
            Permission.VIEW_TENDERS,
            Permission.REVIEW_FLAGS,
            Permission.SUPERVISE_TENDERS,
        }
    ),
    Role.STAFF: frozenset(
        {
            Permission.VIEW_COMPANIES,
            Permission.DECIDE_COMPANY,
            Permission.MANAGE_TEMPLATES,
            Permission.MANAGE_TENDERS,
            Permission.VIEW_TENDERS,
        }
    ),
    Role.CUSTODIAN: frozenset(),
    Role.EXPERT: frozenset(),
    Role.BIDDER: frozenset({Permission.TAKE_PART}),
}
# Roles whose reach is their own centre only.
CENTRE_SCOPED = frozenset({Role.STAFF, Role.CUSTODIAN})


class PermissionDenied(Forbidden):
    description = "You do not have permission to do this."


def can(user: Any, permission: Permission, centre_id: int | None = None) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if permission not in ROLE_PERMISSIONS.get(user.role, frozenset()):
        return False
    if user.role in CENTRE_SCOPED and centre_id is not None:
        return user.centre_id == centre_id
    return True


def require(user: Any, permission: Permission, centre_id: int | None = None) -> None:
    if not can(user, permission, centre_id):
        raise PermissionDenied()
