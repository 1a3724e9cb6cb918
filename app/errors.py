"""Error pages in every language for people, JSON for API clients."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, make_response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DisconnectionError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.core.boundary import settle
from app.core.errors import OperationError
from app.extensions import db

log = logging.getLogger(__name__)

TITLES = {
    400: _l("Bad request"),
    401: _l("Sign-in required"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    409: _l("Conflict"),
    413: _l("Too large"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
    503: _l("Temporarily unavailable"),
}
MESSAGES = {
    400: _l("The request could not be understood. Check what you sent and try again."),
    401: _l("Sign in to continue."),
    403: _l("Your account does not have access to this page or action."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept that kind of request."),
    409: _l("This conflicts with the current state. Reload and try again."),
    413: _l("What you sent is larger than the limit for this page."),
    429: _l("Too many attempts. Wait a minute and try again."),
    500: _l("An unexpected error occurred. Nothing you sent was lost; try again shortly."),
    503: _l(
        "The database connection was interrupted; nothing of this request was saved. "
        "Try again in a few seconds."
    ),
}
# Seconds a client waits before retrying after a dropped database connection.
DATABASE_RETRY_AFTER = 5

NUMBER_TOO_LARGE = _l("A number in the request is too large. Check what you sent and try again.")
# PostgreSQL's SQLSTATE for "integer out of range" and its kin.
NUMERIC_VALUE_OUT_OF_RANGE = "22003"


def abort_with(status: int, message) -> None:
    """Abort with a message meant for the user (shown on the error page / in the JSON)."""
    error = HTTPException(description=str(message))
    error.code = status
    error.fairbid_message = True
    raise error


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, message=None, code: str | None = None, detail=None):
    message = str(message or MESSAGES.get(status, ""))
    if wants_json():
        error = code or str(TITLES.get(status, status))
        response = jsonify({"status": status, "error": error, "message": message, **(detail or {})})
    else:
        title = TITLES.get(status, str(status))
        response = make_response(
            render_template("errors/error.html", status=status, title=title, message=message)
        )
    response.status_code = status
    return response


def api_error(error):
    """APIFlask's validation and authentication errors, in the same JSON shape as ours."""
    status = error.status_code
    body = {
        "status": status,
        "error": str(TITLES.get(status, error.message)),
        "message": str(MESSAGES.get(status, error.message)) if status != 422 else error.message,
    }
    if error.detail:
        body["detail"] = error.detail
    headers = dict(error.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="fairbid"')
    return body, status, headers


def _other_method_matches(methods) -> bool:
    """Whether the request's path is served by one of `methods` (a 405's offer)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in methods:
        if method in ("HEAD", "OPTIONS"):
            continue
        try:
            adapter.match(method=method)
        except HTTPException:
            continue
        return True
    return False


def init_app(app: Flask) -> None:
    app.error_processor(api_error)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return error_response(
            400,
            _l(
                "This form has expired or did not come from Fairbid. Reload the page and try again."
            ),
            code="csrf",
        )

    @app.errorhandler(OperationError)
    def operation_error(error: OperationError):
        # A refusal that reached the handler ends the request's transaction here too.
        settle(error)
        return error_response(error.status, error.message, code=error.code, detail=error.detail())

    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def number_out_of_range(error: Exception):
        """The net under the input checks (app.web): a number the database cannot hold, e.g.
        an id beyond PostgreSQL's 32-bit integers in a JSON body or a page whose offset
        passes 64 bits, is the client's mistake, not a 500. Other data errors stay errors."""
        out_of_range = isinstance(error, OverflowError) or (
            getattr(error.orig, "sqlstate", None) == NUMERIC_VALUE_OUT_OF_RANGE
        )
        db.session.rollback()
        if not out_of_range:
            return unexpected_error(error)
        return error_response(400, NUMBER_TOO_LARGE, code="number_out_of_range")

    @app.errorhandler(OperationalError)
    @app.errorhandler(DisconnectionError)
    def database_unavailable(error: Exception):
        """The database dropped the connection (restart, failover, a terminated backend) or
        could not be reached: the request's transaction is lost, so nothing was saved; the
        client may safely send it again (the pool reconnects on the next checkout)."""
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the session is discarded below anyway
            log.debug("rollback after a dropped connection failed", exc_info=True)
        db.session.remove()
        response = error_response(503, code="database_unavailable")
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        methods = getattr(error, "valid_methods", None)
        if status == 405 and methods and not _other_method_matches(methods):
            # werkzeug offers the methods of a rule whose path matched before its converter
            # refused the value (an id beyond 2^31 - 1): no method serves this address.
            status = 404
        # Our own aborts carry a specific description; werkzeug's defaults are English-only.
        custom = error.description if getattr(error, "fairbid_message", False) else None
        # A stable code where clients act on it: a 429 means wait and retry.
        response = error_response(
            status, custom, code="too_many_attempts" if status == 429 else None
        )
        if status == 405 and methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        if app.testing:
            raise error
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError.code)
