"""The transaction boundary of a request: the only place where a view or an API endpoint
commits or rolls back.

Operations never commit (`app.core.transaction`). A request calls them through one of:

- `transactional`, a decorator for API endpoints and for views whose refusals go to the
  app's error handler (uniform JSON for the API, the error page for people): it commits
  once when the view returns;
- `perform` / `run_operation` for HTML actions that flash and redirect;
- `attempt` for HTML forms that re-render (or show a page of their own) on refusal.

A refusal (`OperationError`) is settled by `settle`: rolled back, or, for an error type that
`keeps_audit`, committed so that its audited failure stays. Nothing else commits in views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Generic, TypeVar

from flask import abort, flash, redirect
from flask_login import current_user
from werkzeug.wrappers import Response

from app.core.errors import OperationError
from app.extensions import db

T = TypeVar("T")
Success = str | Callable[[Any], str]


def settle(error: OperationError) -> None:
    """End the request's transaction after a refusal: nothing stays but an audited failure."""
    if error.keeps_audit:
        db.session.commit()
    else:
        db.session.rollback()


def commit() -> None:
    """Make the request's work durable (after-commit side effects run now)."""
    db.session.commit()


def transactional(view: Callable[..., T]) -> Callable[..., T]:
    """Run the view in one transaction: commit once when it returns; settle a refusal and let
    it reach the error handler; roll back on anything else."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            result = view(*args, **kwargs)
        except OperationError as error:
            settle(error)
            raise
        except BaseException:
            db.session.rollback()
            raise
        commit()
        return result

    return wrapper


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What `attempt` got: the operation's value, or the refusal."""

    value: T | None = None
    error: OperationError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def attempt(
    operation: Callable[..., T], *args: Any, flash_refusal: bool = True, **kwargs: Any
) -> Outcome[T]:
    """Call one operation and end the transaction: commit on success; on a refusal settle it
    and (unless told not to) flash its message, so the view can re-render its form."""
    try:
        value = operation(*args, **kwargs)
    except OperationError as error:
        settle(error)
        if flash_refusal:
            flash(str(error.message), "error")
        return Outcome(error=error)
    commit()
    return Outcome(value=value)


def perform(
    operation: Callable[..., Any],
    *args: Any,
    success: Success,
    back: str,
    refused_back: str | None = None,
) -> tuple[Response, Any]:
    """Call one operation as the signed-in user: commit and flash `success` (a message, or a
    function of the operation's result that makes one), or settle the refusal and flash the
    operation's own message (a 404 stays a 404). Returns the redirect to `back` (or to
    `refused_back`, when given, after a refusal) and the operation's result (None when it
    was refused)."""
    outcome = attempt(operation, current_user, *args, flash_refusal=False)
    if not outcome.ok:
        if outcome.error.status == 404:
            abort(404)
        flash(str(outcome.error.message), "error")
        return redirect(refused_back or back, code=303), None
    flash(success(outcome.value) if callable(success) else success, "success")
    return redirect(back), outcome.value


def run_operation(
    operation: Callable[..., Any],
    *args: Any,
    success: Success,
    back: str,
    refused_back: str | None = None,
) -> Response:
    """`perform`, for views that need only the redirect."""
    return perform(operation, *args, success=success, back=back, refused_back=refused_back)[0]
