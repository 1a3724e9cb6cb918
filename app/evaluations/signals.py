"""Signals of the evaluation stage, connected to later stages in the app factory."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent when the chair finalises an evaluation, inside the same transaction:
# evaluation_finalised.send(tender, actor=user, evaluation=evaluation)
evaluation_finalised = _signals.signal("evaluation-finalised")
