"""What every HTML view that performs an operation does the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect
from flask_login import current_user
from werkzeug.wrappers import Response

from app.core.errors import OperationError
from app.extensions import db

Success = str | Callable[[Any], str]


def perform(
    operation: Callable[..., Any],
    *args: Any,
    success: Success,
    back: str,
    refused_back: str | None = None,
) -> tuple[Response, Any]:
    """Call one operation as the signed-in user: commit and flash `success` (a message, or a
    function of the operation's result that makes one), or roll back
    and flash the operation's own message (a 404 stays a 404). Returns the redirect to
    `back` (or to `refused_back`, when given, after a refusal) and the operation's result
    (None when it was refused)."""
    try:
        result = operation(current_user, *args)
    except OperationError as error:
        db.session.rollback()
        if error.status == 404:
            abort(404)
        flash(str(error.message), "error")
        return redirect(refused_back or back, code=303), None
    db.session.commit()
    flash(success(result) if callable(success) else success, "success")
    return redirect(back), result


def run_operation(
    operation: Callable[..., Any],
    *args: Any,
    success: Success,
    back: str,
    refused_back: str | None = None,
) -> Response:
    """`perform`, for views that need only the redirect."""
    return perform(operation, *args, success=success, back=back, refused_back=refused_back)[0]
