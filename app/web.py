"""Request-wide behaviour: who is signed in, second-factor enforcement, body checks, and
what every template can see."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from flask import Flask, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.core.errors import OperationError
from app.errors import abort_with
from app.extensions import db, login_manager, redis_client

SECOND_FACTOR_KEY = "second_factor_ok"
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
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


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


# Integers the databases can hold (SQLite and PostgreSQL: 64-bit at most).
MAX_INT = 2**63 - 1
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _unstorable(value: object) -> str | None:
    """Why a value of the request cannot reach the database, or None."""
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value):
            return "invalid_character"
        if len(value) > 18 and _INTEGER.fullmatch(value):
            digits = value.strip().lstrip("+-").lstrip("0")
            # Compared as text first: int() refuses strings of thousands of digits.
            if len(digits) > 19 or (len(digits) == 19 and int(digits) > MAX_INT):
                return "number_out_of_range"
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return "number_out_of_range"
    return None


def _request_values() -> Iterator[object]:
    """Every key and value the request carries: path, query, form, file names, JSON."""
    yield request.path
    for multi in (request.args, request.form):
        for key, values in multi.lists():
            yield key
            yield from values
    for key, storage in request.files.items(multi=True):
        yield key
        yield storage.filename or ""
    if request.is_json:
        stack = [request.get_json(silent=True)]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                yield from item.keys()
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            else:
                yield item


def _reject_unstorable_input() -> None:
    """One check for every route, before any view reads the request: a NUL byte or a lone
    surrogate (PostgreSQL refuses both) or an integer beyond 64 bits (an OverflowError in
    SQLite, an out-of-range error in PostgreSQL) answers 400 with a stable code."""
    for value in _request_values():
        problem = _unstorable(value)
        if problem == "invalid_character":
            raise OperationError(
                _l(
                    "The request contains a character that cannot be stored (a NUL byte or "
                    "an unpaired surrogate). Remove it and try again."
                ),
                code=problem,
            )
        if problem == "number_out_of_range":
            raise OperationError(
                _l("A number in the request is too large. Check what you sent and try again."),
                code=problem,
            )


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

    @app.before_request
    def before_request() -> Response | None:
        if request.method in {"POST", "PUT", "PATCH"}:
            _reject_undecodable_forms()
        _reject_unstorable_input()
        return _enforce_second_factor()

    @app.context_processor
    def template_context() -> dict[str, bool]:
        return {"redis_ok": redis_available()}
