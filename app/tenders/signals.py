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
# Asked for the people of later stages who take part in a tender (its panel), to tell them
# about a suspension: people_involved_asked.send(tender) -> [(fn, list[User])]
people_involved_asked = _signals.signal("tender-people-involved-asked")

# Sent when a second supervisor approves a resumption with a re-evaluation, inside the same
# transaction (a receiver that raises aborts the approval):
# reevaluation_ordered.send(tender, actor=user, reason=str)
reevaluation_ordered = _signals.signal("tender-reevaluation-ordered")
