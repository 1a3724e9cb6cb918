"""Errors an operation raises for the user: a clear message, nothing stored."""

from __future__ import annotations


class OperationError(Exception):
    """A refused operation. `message` is shown to the user (lazy-translated); `code` is stable
    for API clients; `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message, code: str = "invalid", status: int | None = None):
        super().__init__(str(message))
        self.message = message
        self.code = code
        if status is not None:
            self.status = status


class Conflict(OperationError):
    status = 409
