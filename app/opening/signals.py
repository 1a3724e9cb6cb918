"""Signals of the opening stage, connected to later stages in the app factory."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent when a tender's envelopes have been opened, inside the opening's transaction (a
# receiver registers after-commit work; it must not fail the opening):
# tender_opened.send(tender)
tender_opened = _signals.signal("tender-opened")
