"""Request-wide behaviour: who is signed in, second-factor enforcement, body checks, and
what every template can see."""

from __future__ import annotations

import hashlib
import time

from flask import Flask, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.errors import abort_with
from app.extensions import db, login_manager, redis_client

SECOND_FACTOR_KEY = "second_factor_ok"
# The user's session version at sign-in; a session from before a bump is no session.
SESSION_VERSION_KEY = "session_version"
_REDIS_CHECK_SECONDS = 10
_redis_state = {"checked": 0.0, "ok": True}


def redis_available() -> bool:
    """Cached for a few seconds so a Redis outage does not slow every page down."""
    now = time.monotonic()
    if now - _redis_state["checked"] > _REDIS_CHECK_SECONDS:
        _redis_state.update(checked=now, ok=redis_client.available())
    return _redis_state["ok"]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or session.get(SESSION_VERSION_KEY) != user.session_version:
        return None
    return user


def session_identifier() -> str:
    """Flask-Login's "strong" session protection ties a session to the client's address and
    browser. Its own version takes the address from X-Forwarded-For, which any client can
    send; this one uses the connection's address (the proxy's view of it only when
    FAIRBID_PROXY_COUNT configures ProxyFix)."""
    user_agent = request.headers.get("User-Agent", "")
    return hashlib.sha512(f"{request.remote_addr}|{user_agent}".encode()).hexdigest()


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    if request.path.startswith("/api/"):
        abort_with(401, _l("Sign in to continue."))
    flash(_l("Sign in to continue."), "info")
    return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))


def _reject_undecodable_forms() -> None:
    """Refuse form bodies that are not UTF-8 instead of silently mangling them."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return
    try:
        request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        abort_with(400, _l("The form was not sent as UTF-8 text."))


def _enforce_second_factor() -> Response | None:
    """A privileged user whose session did not pass TOTP is signed out (e.g. a role that
    became privileged while signed in)."""
    if (
        current_user.is_authenticated
        and current_user.needs_totp
        and not session.get(SECOND_FACTOR_KEY)
        and not request.path.startswith("/api/")
    ):
        logout_user()
        flash(_l("Your role needs a second factor: sign in again."), "info")
        return redirect(url_for("accounts.login"))
    return None


def init_app(app: Flask) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
    login_manager._session_identifier_generator = session_identifier

    @app.before_request
    def before_request() -> Response | None:
        if request.method in {"POST", "PUT", "PATCH"}:
            _reject_undecodable_forms()
        return _enforce_second_factor()

    @app.context_processor
    def template_context() -> dict[str, bool]:
        return {"redis_ok": redis_available()}
