"""The bidder's pages: only the walk's bidder (its company is approved and registered for
the walk's tender; the certificate, alias and notification are its own)."""

BIDDER = frozenset({"bidder"})

EXPECTED = {
    "bidder.dashboard": BIDDER,
    "bidder.register": BIDDER,
    "bidder.ask_enquiry": BIDDER,
    "bidder.profile": BIDDER,
    "bidder.add_certificate": BIDDER,
    "bidder.remove_certificate": BIDDER,
    "bidder.add_alias": BIDDER,
    "bidder.remove_alias": BIDDER,
    "bidder.notifications": BIDDER,
    "bidder.read_notification": BIDDER,
}
