"""One limit on the attempts at one account's secrets, whatever the address they come from.

Every entry point that checks a password, a second-factor code or a custodian key passphrase
(web sign-in and two-factor, API tokens, custodian key unlock at the opening and for the
paper backup, countersigning the record, publication on the web and through the API) takes
`account_limit`. The limit is shared: the attempts against one account add up across all of
them, so guessing through one door does not reset the count at another. Every attempt
counts (an atomic hit before the check, so parallel requests cannot overrun it); the 429
comes before the view runs, so a refused attempt stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request
from flask_limiter import RouteLimit
from flask_login import current_user

from app.accounts.models import User
from app.accounts.operations import normalise_email, user_by_email
from app.extensions import limiter

SCOPE = "account-secrets"

# Who a request tries the secrets of: a user, an e-mail address (sign-in by address) or
# None when the request names nobody (then the client's address stands in).
Account = User | str | None


def _limit() -> str:
    return current_app.config["RATELIMIT_LOGIN_ACCOUNT"]


def account_key(account: Account) -> str:
    """The limiter key of an account: its id, or the normalised address when no account has
    it (so guessing unknown addresses is limited too)."""
    if isinstance(account, User):
        return f"user:{account.id}"
    if isinstance(account, str) and account.strip():
        email = normalise_email(account)[:254]
        user = user_by_email(email)
        return f"user:{user.id}" if user is not None else f"email:{email}"
    return f"address:{request.remote_addr}"


def account_limit(
    account: Callable[[], Account], *, unless: Callable[[], bool] | None = None
) -> RouteLimit:
    """Decorator: the shared per-account limit on a route's POSTs. `account` names the
    account the request tries (one of the functions below, or the route's own); `unless`
    exempts requests that the route refuses before any secret is checked (e.g. a role
    that may not countersign), so they do not spend the account's attempts."""
    return limiter.shared_limit(
        _limit,
        scope=SCOPE,
        key_func=lambda: account_key(account()),
        methods=["POST"],
        exempt_when=unless,
    )


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
