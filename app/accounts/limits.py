"""One limit on the attempts at one account's secrets, whatever the address they come from.

Every entry point that checks a password, a second-factor code or a custodian key passphrase
(web sign-in and two-factor, API tokens, custodian key unlock at the opening and for the
paper backup, countersigning the record, publication on the web and through the API) takes
`account_limit`. The limit is shared: the attempts against one account add up across all of
them, so guessing through one door does not reset the count at another. Every attempt
counts (an atomic hit before the check, so parallel requests cannot overrun it); the 429
comes before the view runs, so a refused attempt stores nothing.

The key is the account's normalised e-mail address, whichever door names it (a signed-in
user by its row, a sign-in form or the API's token request by the address typed), so
finding it needs no database: the key function cannot fail on an exhausted connection
pool. It must not fail open either: Flask-Limiter takes any exception from a key function
for a storage failure and, with `RATELIMIT_SWALLOW_ERRORS`, lets the request through
unlimited. So an exception in naming the account (or in `unless`) is caught here, logged,
and the request is refused with a 503 before its view runs (an HTTP error such as a body
too large keeps its own status).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app, g, request
from flask_limiter import RouteLimit
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from app.accounts.models import User
from app.accounts.operations import normalise_email
from app.extensions import limiter

log = logging.getLogger(__name__)

SCOPE = "account-secrets"
_FAILED = "account_limit_failed"  # g: the exception met while naming the account

# Who a request tries the secrets of: a user, an e-mail address (sign-in by address) or
# None when the request names nobody (then the client's address stands in).
Account = User | str | None


def _limit() -> str:
    return current_app.config["RATELIMIT_LOGIN_ACCOUNT"]


def account_key(account: Account) -> str:
    """The limiter key of an account: its normalised e-mail address, the same for the user's
    row and for the address typed at a sign-in (so guessing unknown addresses is limited
    too). No database query: a loaded user's address, or the string itself."""
    if isinstance(account, User):
        return f"email:{normalise_email(account.email)[:254]}"
    if isinstance(account, str) and account.strip():
        return f"email:{normalise_email(account)[:254]}"
    return f"address:{request.remote_addr}"


def _failed(error: Exception) -> None:
    log.exception("naming the account of a limited request failed; the request is refused")
    g.setdefault(_FAILED, error)


def _key_of(account: Callable[[], Account]) -> Callable[[], str]:
    def key() -> str:
        try:
            return account_key(account())
        except Exception as error:
            _failed(error)
            return f"address:{request.remote_addr}"  # counted there too; refused below

    return key


def _exempt(unless: Callable[[], bool] | None) -> Callable[[], bool] | None:
    if unless is None:
        return None

    def exempt() -> bool:
        try:
            return bool(unless())
        except Exception as error:
            _failed(error)
            return False

    return exempt


def account_limit(
    account: Callable[[], Account], *, unless: Callable[[], bool] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the shared per-account limit on a route's POSTs. `account` names the
    account the request tries (one of the functions below, or the route's own); `unless`
    exempts requests that the route refuses before any secret is checked (e.g. a role
    that may not countersign), so they do not spend the account's attempts. A request
    whose account could not be named is refused (module docstring)."""
    shared: RouteLimit = limiter.shared_limit(
        _limit,
        scope=SCOPE,
        key_func=_key_of(account),
        methods=["POST"],
        exempt_when=_exempt(unless),
    )

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def refuse_unnamed(*args: Any, **kwargs: Any) -> Any:
            error = g.pop(_FAILED, None)
            if error is not None:
                if isinstance(error, HTTPException):
                    raise error
                abort(503)
            return view(*args, **kwargs)

        return shared(refuse_unnamed)

    return decorator


def signed_in_account() -> Account:
    """The signed-in user (re-confirming a secret: publication, countersigning, unlocking)."""
    return current_user._get_current_object() if current_user.is_authenticated else None


def form_email() -> Account:
    """The e-mail address a sign-in form names."""
    return request.form.get("email", "")


def json_email() -> Account:
    """The e-mail address a JSON body names (the API's token request)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return email if isinstance(email, str) else None
