"""The evaluation's review stage: panel members (404 for an expert not on the panel) and the
centre's staff, supervisors and admins read the review and the anonymity questions; staff of
the centre start the evaluation; the chair's actions are for experts (the operation checks
the chair); a bidder answers its own price-justification request (404 without one)."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ

PANEL = frozenset({"expert"})
READERS = CENTRE_A_READ | PANEL
BIDDER = frozenset({"bidder"})

EXPECTED = {
    "evaluations.review_page": READERS,
    "evaluations.anonymity": READERS,
    "evaluations.justification_file": READERS,
    "evaluations.start": CENTRE_A_DECIDE,
    "evaluations.overrule": PANEL,
    "evaluations.record_check": PANEL,
    "evaluations.request_justification": PANEL,
    "evaluations.decide_justification": PANEL,
    "evaluations.decide_anonymity": PANEL,
    "evaluations.confirm": PANEL,
    "evaluations.justification": BIDDER,
    "api.evaluation_review": READERS,
    "api.evaluation_anonymity": READERS,
    "api.evaluation_start": CENTRE_A_DECIDE,
    "api.evaluation_overrule": PANEL,
    "api.evaluation_check": PANEL,
    "api.evaluation_request_justification": PANEL,
    "api.evaluation_decide_justification": PANEL,
    "api.evaluation_decide_anonymity": PANEL,
    "api.evaluation_confirm": PANEL,
    "api.evaluation_justification": BIDDER,
    "api.evaluation_submit_justification": BIDDER,
}
