"""Column types shared by all models."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

# The drill (`flask scenario run`, app/scenario) rehearses a tender's weeks in seconds by
# shifting the clock of its own execution context (see app.scenario.clock). Nothing else sets
# it: requests and workers always read the real clock.
CLOCK_OFFSET: ContextVar[timedelta | None] = ContextVar("fairbid_clock_offset", default=None)


def utcnow() -> datetime:
    """The server clock: the only clock the platform trusts."""
    offset = CLOCK_OFFSET.get()
    now = datetime.now(UTC)
    return now if offset is None else now + offset


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
