"""Key custody: the custodian pages (custodians, staff and supervisors: anyone who may be
named key custodian) and the public tender key in the API."""

from tests.app.expectations import PUBLIC

KEY_HOLDERS = frozenset({"custodian", "staff_a", "staff_b", "supervisor"})

EXPECTED = {
    "custody.index": KEY_HOLDERS,
    "custody.create_key": KEY_HOLDERS,
    # Only one's own share: others get 404 (not a denial), so the gate is the role.
    "custody.download_backup": KEY_HOLDERS,
    "api.get_tender_public_key": PUBLIC,
}
