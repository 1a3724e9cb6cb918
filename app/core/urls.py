from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import IntegerConverter, Map


def safe_next(target: str | None, default: str) -> str:
    """A local path to go back to, never another site (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


# The largest id any route takes: SQLite and PostgreSQL integers are at most 64-bit, and a
# larger number reached the database as an OverflowError (500) instead of a 404.
MAX_ROUTE_INT = 2**63 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` for every route: like werkzeug's, but a number beyond 64 bits does not
    match, so the address answers 404 (registered as `int` in the app factory)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROUTE_INT)
        super().__init__(map, *args, **kwargs)
