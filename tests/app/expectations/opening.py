"""The opening ceremony: the live page, its event stream and progress are public; staff of
the tender's centre start it; key holders unlock (others than the tender's custodians get
404, so the gate is the role); bidders confirm or object to their own line (404 without
one)."""

from tests.app.expectations import CENTRE_A_DECIDE, PUBLIC

KEY_HOLDERS = frozenset({"custodian", "staff_a", "staff_b", "supervisor"})

EXPECTED = {
    "opening.tender": PUBLIC,
    "opening.events": PUBLIC,
    "opening.progress": PUBLIC,
    "opening.record": PUBLIC,  # 404 until the tender is opened
    "opening.start": CENTRE_A_DECIDE,
    "opening.unlock": KEY_HOLDERS,
    "opening.confirm": frozenset({"bidder"}),
    "opening.object_line": frozenset({"bidder"}),
}
