"""The JSON API under /api/v1, described by the generated OpenAPI document at
/api/v1/openapi.json. Clients authenticate with `Authorization: Bearer TOKEN`."""

from __future__ import annotations

from apiflask import APIBlueprint, HTTPTokenAuth

from app.accounts.operations import user_for_api_token
from app.errors import api_error

bp = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="Fairbid")
auth = HTTPTokenAuth(scheme="Bearer", description="An API token from /api/v1/tokens")


auth.error_processor(api_error)


@auth.verify_token
def verify_token(token: str):
    return user_for_api_token(token) if token else None


from app.api import accounts, audit, centres, companies  # noqa: E402, F401  (routes)
