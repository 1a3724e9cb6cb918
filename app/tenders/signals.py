"""Signals of the tender stage, connected to later stages in the app factory."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent while a tender is being published, inside the same transaction (a receiver that
# raises aborts the publication): tender_publishing.send(tender, actor=user)
tender_publishing = _signals.signal("tender-publishing")

# Sent when a public tender is cancelled, inside the same transaction (the results stage
# publishes the signed cancellation notice): tender_cancelled.send(tender, actor=user)
tender_cancelled = _signals.signal("tender-cancelled")
