"""Errors an operation raises for the user: a clear message, nothing stored."""

from __future__ import annotations

from typing import Any


class OperationError(Exception):
    """A refused operation. `message` is shown to the user (lazy-translated); `code` is stable
    for API clients; `status` is the HTTP status the API answers with.

    A refusal rolls the request's transaction back (`app.core.boundary.settle`), unless its
    type sets `keeps_audit`: then the audit event the operation wrote before refusing (a
    failed TOTP or password attempt) is committed, and nothing else may have been written.
    """

    status = 400
    keeps_audit = False

    def __init__(self, message, code: str = "invalid", status: int | None = None):
        super().__init__(str(message))
        self.message = message
        self.code = code
        if status is not None:
            self.status = status

    def detail(self) -> dict[str, Any]:
        """Extra fields for the JSON error body (e.g. the offset to resume an upload at)."""
        return {}


class Conflict(OperationError):
    status = 409
