"""Request-wide behaviour: who is signed in, second-factor enforcement, body checks, and
what every template can see."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from flask_login.config import COOKIE_NAME
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.core.errors import OperationError
from app.core.urls import MAX_ROUTE_INT
from app.errors import NUMBER_TOO_LARGE, abort_with
from app.extensions import db, login_manager, redis_client

SECOND_FACTOR_KEY = "second_factor_ok"
# The user's session version at sign-in; a session from before a bump is no session.
SESSION_VERSION_KEY = "session_version"
_REDIS_CHECK_SECONDS = 10
_redis_state = {"checked": 0.0, "ok": True}


def redis_available() -> bool:
    """Cached for a few seconds so a Redis outage does not slow every page down; a failure
    seen by any Redis call in the meantime counts at once."""
    if redis_client.known_down():
        return False
    now = time.monotonic()
    if now - _redis_state["checked"] > _REDIS_CHECK_SECONDS:
        _redis_state.update(checked=now, ok=redis_client.available())
    return _redis_state["ok"]


def redis_known_available(app: Flask) -> bool:
    """What `redis_available` would answer without a round trip, or False when it would
    have to ask (its last check is too old): for callers outside a request (the signed-out
    page layer, app.core.page_cache), which then leave the question to the app."""
    breaker = app.extensions.get("fairbid_redis_breaker")
    if breaker is not None and breaker.is_open():
        return False
    fresh = time.monotonic() - _redis_state["checked"] <= _REDIS_CHECK_SECONDS
    return fresh and _redis_state["ok"]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        # A bidder's company in the same statement (most of a bidder's pages check it).
        user = db.session.get(User, int(user_id), options=[joinedload(User.company)])
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


# Integers the databases can hold (SQLite and PostgreSQL: 64-bit at most), and ids: every
# field named `id`, `..._id` or `..._ids` refers to an INTEGER column, 32-bit on PostgreSQL
# (the same bound as `<int:...>` routes).
MAX_INT = 2**63 - 1
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _is_id(key: str | None) -> bool:
    return key is not None and (key == "id" or key.endswith(("_id", "_ids")))


def _too_large(number: int | str, bound: int) -> bool:
    if isinstance(number, str):
        digits = number.strip().lstrip("+-").lstrip("0")
        # Compared as text first: int() refuses strings of thousands of digits.
        if len(digits) > len(str(bound)):
            return True
        number = int(digits or "0")
    return abs(number) > bound


def _unstorable(key: str | None, value: object) -> str | None:
    """Why a value of the request cannot reach the database, or None."""
    bound = MAX_ROUTE_INT if _is_id(key) else MAX_INT
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value):
            return "invalid_character"
        if len(value) >= len(str(bound)) and _INTEGER.fullmatch(value) and _too_large(value, bound):
            return "number_out_of_range"
    elif isinstance(value, int) and not isinstance(value, bool) and _too_large(value, bound):
        return "number_out_of_range"
    return None


def _request_items() -> Iterator[tuple[str | None, object]]:
    """Every key and value the request carries (path, query, form, file names, JSON), each
    value with the name it came under."""
    yield None, request.path
    if request.query_string:
        for key, values in request.args.lists():
            yield None, key
            for value in values:
                yield key, value
    if not _has_body():
        return  # no form, file or JSON to parse (most GETs): skip werkzeug's parsers
    for key, values in request.form.lists():
        yield None, key
        for value in values:
            yield key, value
    for key, storage in request.files.items(multi=True):
        yield None, key
        yield None, storage.filename or ""
    if request.is_json:
        limit = current_app.config["MAX_JSON_DEPTH"]
        stack: list[tuple[str | None, object, int]] = [(None, _json_body(), 0)]
        while stack:
            name, item, depth = stack.pop()
            if isinstance(item, dict | list) and depth >= limit:
                raise _too_deep()
            if isinstance(item, dict):
                for key, value in item.items():
                    yield None, key
                    stack.append((key, value, depth + 1))
            elif isinstance(item, list):
                stack.extend((name, value, depth + 1) for value in item)
            else:
                yield name, item


def _too_deep() -> OperationError:
    return OperationError(
        _l(
            "The JSON body is nested too deeply (more than %(n)d levels).",
            n=current_app.config["MAX_JSON_DEPTH"],
        ),
        code="json_too_deep",
    )


def _json_body() -> object:
    """The request's JSON (None if it is not JSON). A body nested deeper than Python's
    parser can recurse (thousands of brackets) is refused as too deep, not a 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise _too_deep() from None


def _limit_json_body() -> None:
    """A JSON body larger than MAX_JSON_BYTES answers 413: before it is read when its length
    is declared, else (chunked) once read, within the request's general limit."""
    if not request.is_json:
        return
    limit = current_app.config["MAX_JSON_BYTES"]
    size = request.content_length
    if size is None and _has_body():
        size = len(request.get_data(cache=True))
    if size is not None and size > limit:
        raise OperationError(
            _l("The JSON body is larger than the limit of %(n)d bytes.", n=limit),
            code="json_too_large",
            status=413,
        )


def _has_body() -> bool:
    """Whether the request may carry a body: a length above zero, or a chunked one."""
    return bool(request.content_length) or "Transfer-Encoding" in request.headers


def _reject_unstorable_input() -> None:
    """One check for every route, before any view reads the request: a NUL byte or a lone
    surrogate (PostgreSQL refuses both), an integer beyond 64 bits (an OverflowError in
    SQLite, out of range in PostgreSQL) or an id beyond 32 bits answers 400 with a stable
    code. (Numbers made from valid ones, e.g. a page's offset, meet app.errors' net.)"""
    for key, value in _request_items():
        problem = _unstorable(key, value)
        if problem == "invalid_character":
            raise OperationError(
                _l(
                    "The request contains a character that cannot be stored (a NUL byte or "
                    "an unpaired surrogate). Remove it and try again."
                ),
                code=problem,
            )
        if problem == "number_out_of_range":
            raise OperationError(NUMBER_TOO_LARGE, code=problem)


def _enforce_second_factor() -> Response | None:
    """A privileged user whose session did not pass TOTP is signed out (e.g. a role that
    became privileged while signed in)."""
    if session.get(SECOND_FACTOR_KEY) or request.path.startswith("/api/"):
        return None  # the cheap conditions first: loading the user costs more
    if "_user_id" not in session and _remember_cookie() not in request.cookies:
        return None  # nobody is signed in (what Flask-Login would find, without asking it)
    if current_user.is_authenticated and current_user.needs_totp:
        logout_user()
        flash(_l("Your role needs a second factor: sign in again."), "info")
        return redirect(url_for("accounts.login"))
    return None


def _remember_cookie() -> str:
    return current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)


def init_app(app: Flask) -> None:
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
    login_manager._session_identifier_generator = session_identifier

    @app.before_request
    def before_request() -> Response | None:
        if request.method in {"POST", "PUT", "PATCH"}:
            _reject_undecodable_forms()
            _limit_json_body()
        _reject_unstorable_input()
        return _enforce_second_factor()

    @app.context_processor
    def template_context() -> dict[str, bool]:
        return {"redis_ok": redis_available()}
