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


# The largest id any route takes: ids are INTEGER columns, 32-bit on PostgreSQL (bids'
# BigInteger ids will not pass it for a long time). A larger number reached the database as
# an OverflowError (SQLite, beyond 64 bits) or "integer out of range" (PostgreSQL): a 500.
MAX_ROUTE_INT = 2**31 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` for every route: like werkzeug's, but a number beyond what an id column
    holds does not match, so the address answers 404 (registered as `int` in the app
    factory)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ROUTE_INT)
        super().__init__(map, *args, **kwargs)
