"""Signals of the panel stage. The evaluation stage, later in the lifecycle, answers them
(connected in the app factory), so that panels never import it."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Asked before an emptied seat is refilled: a receiver returns True once technical scoring
# has locked (the seat then stays vacant). scoring_lock_asked.send(tender) -> [(fn, bool)]
scoring_lock_asked = _signals.signal("panel-scoring-lock-asked")

# Sent when a member leaves the panel (a declared conflict, a removal), inside the same
# transaction, after their status changed: seat_vacated.send(tender, member=member)
seat_vacated = _signals.signal("panel-seat-vacated")
