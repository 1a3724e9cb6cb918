from __future__ import annotations

from flask import current_app, request

from app.accounts import operations
from app.api import auth, bp
from app.api.schemas import TokenOut, TokenRequest, UserOut
from app.core.errors import OperationError
from app.extensions import db, limiter


@bp.post("/tokens")
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"])
@bp.input(TokenRequest, arg_name="body")
@bp.output(TokenOut, status_code=201)
@bp.doc(summary="Create an API token", description="Privileged roles must send `totp_code`.")
def create_token(body):
    try:
        user = operations.authenticate(body["email"], body["password"])
        if user.needs_totp:
            operations.check_second_factor(user, body["totp_code"])
    except OperationError:
        db.session.commit()  # keep the audited failure
        raise
    token = operations.create_api_token(user, body["name"])
    expires_at = operations.api_token_record(token).expires_at
    db.session.commit()
    return {"token": token, "expires_at": expires_at}


@bp.delete("/tokens/current")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Revoke the token used for this request")
def revoke_current_token():
    token = request.headers.get("Authorization", "").split(" ", 1)[-1]
    operations.revoke_api_token(auth.current_user, operations.api_token_record(token))
    db.session.commit()
    return ""


@bp.get("/me")
@bp.auth_required(auth)
@bp.output(UserOut)
@bp.doc(summary="The authenticated user")
def me():
    return auth.current_user
