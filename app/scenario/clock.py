"""The drill's clock: a tender takes weeks (publication, a deadline at least 15 or 20 days
later, the objection window); the drill lives them in seconds.

The platform reads time only through `app.core.types.utcnow()`, which adds the offset held
in the context variable `CLOCK_OFFSET` when one is set. `SimulatedClock` sets that offset for
the current execution context only (the drill's thread; inline jobs and in-process burst
workers run in it too) and removes it on exit, so the server's requests and workers, and the
rest of the process after the drill, always read the real clock.

The drill is backdated, never run ahead: its timeline is laid out so that its last step
happens a few minutes before the real now. Every timestamp it writes is then in the past,
the clock only moves forward while it runs, and what it leaves behind (a tender open for bids
until next week, one awarded yesterday) is consistent with the real clock afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import TracebackType

from app.core.types import CLOCK_OFFSET, utcnow


class ClockError(RuntimeError):
    """The drill asked the clock to go backwards."""


class SimulatedClock:
    """`with SimulatedClock(start) as clock: ... clock.travel_to(moment)`."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware datetime")
        self.start = start
        self._token = None

    def __enter__(self) -> SimulatedClock:
        if CLOCK_OFFSET.get() is not None:
            raise ClockError("a simulated clock is already running in this context")
        self._token = CLOCK_OFFSET.set(self.start - datetime.now(UTC))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        CLOCK_OFFSET.reset(self._token)
        self._token = None

    def now(self) -> datetime:
        return utcnow()

    def travel_to(self, moment: datetime) -> datetime:
        """Jump forward to `moment` (a moment already passed leaves the clock alone: time
        never runs backwards for the platform)."""
        if self._token is None:
            raise ClockError("the simulated clock is not running")
        if moment > utcnow():
            CLOCK_OFFSET.set(moment - datetime.now(UTC))
        return utcnow()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ClockError("the clock never runs backwards")
        return self.travel_to(utcnow() + delta)
