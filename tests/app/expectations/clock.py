"""The clock's alerts: staff of any centre (their own centre's), supervisors and
administrators read; staff and administrators retry a failed step."""

from tests.app.expectations import STAFF_ANY

TENDER_MANAGERS_ANY = frozenset({"staff_a", "staff_b", "admin"})

EXPECTED = {
    "clock.alerts": STAFF_ANY,
    "clock.retry": TENDER_MANAGERS_ANY,
    "api.clock_alerts": STAFF_ANY,
    "api.retry_clock_alert": TENDER_MANAGERS_ANY,
}
