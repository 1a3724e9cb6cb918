"""Red flags: supervisors (their centre hierarchy) and administrators only; bidders,
experts, custodians, staff and the public never reach a flag."""

from tests.app.expectations import SUPERVISION

EXPECTED = {
    "supervision_flags.index": SUPERVISION,
    "supervision_flags.show": SUPERVISION,
    "supervision_flags.review": SUPERVISION,
    "api.list_flags": SUPERVISION,
    "api.get_flag": SUPERVISION,
    "api.review_flag": SUPERVISION,
}
