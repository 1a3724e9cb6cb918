"""The JSON API under /api/v1, described by the generated OpenAPI document at
/api/v1/openapi.json. Clients authenticate with `Authorization: Bearer TOKEN`."""

from __future__ import annotations

from functools import wraps

from apiflask import APIBlueprint, HTTPTokenAuth

from app.accounts.models import User
from app.accounts.operations import user_for_api_token
from app.errors import api_error
from app.permissions import PermissionDenied

bp = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="Fairbid")
auth = HTTPTokenAuth(scheme="Bearer", description="An API token from /api/v1/tokens")


auth.error_processor(api_error)


@auth.verify_token
def verify_token(token: str) -> User | None:
    return user_for_api_token(token) if token else None


def roles_required(*roles: str):
    """A clean 403 for the wrong role before the body is even validated. The operation's
    own permission check (centre scope included) still runs."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if auth.current_user is None or auth.current_user.role not in roles:
                raise PermissionDenied()
            return view(*args, **kwargs)

        wrapper.allowed_roles = frozenset(roles)
        return wrapper

    return decorator


from app.api import (  # noqa: E402, F401
    accounts,
    audit,
    bids,
    centres,
    clock,
    companies,
    custody,
    evaluations,
    experts,
    flags,
    ocds,
    records,
    results,
    scoring,
    supervision,
    tenders,
)
