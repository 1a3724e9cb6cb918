from __future__ import annotations

from typing import Any

from flask import current_app, request

from app.accounts import operations
from app.accounts.limits import account_limit, json_email
from app.accounts.models import User
from app.api import auth, bp
from app.api.schemas import TokenOut, TokenRequest, UserOut, error_responses
from app.core.boundary import transactional
from app.extensions import limiter


@bp.post("/tokens")
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"])
@account_limit(json_email)
@bp.input(TokenRequest, arg_name="body")
@bp.output(TokenOut, status_code=201)
@bp.doc(
    summary="Create an API token",
    description="Privileged roles must send `totp_code`.",
    responses=error_responses(
        401,
        503,
        texts={
            401: "Wrong e-mail, password or second-factor code (`bad_credentials`, ...).",
            503: "Too many sign-ins at once (`busy`): nothing was checked; try again shortly.",
        },
    ),
)
@transactional
def create_token(body: dict[str, Any]) -> dict[str, Any]:
    # A wrong password or code (SignInFailed) keeps its audited failure.
    user = operations.authenticate(body["email"], body["password"])
    if user.needs_totp:
        operations.check_second_factor(user, body["totp_code"])
    token = operations.create_api_token(user, body["name"])
    expires_at = operations.api_token_record(token).expires_at
    return {"token": token, "expires_at": expires_at}


@bp.delete("/tokens/current")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke the token used for this request")
@transactional
def revoke_current_token() -> str:
    token = request.headers.get("Authorization", "").split(" ", 1)[-1]
    operations.revoke_api_token(auth.current_user, operations.api_token_record(token))
    return ""


@bp.get("/me")
@bp.auth_required(auth)
@bp.output(UserOut)
@bp.doc(summary="The authenticated user")
def me() -> User:
    return auth.current_user
