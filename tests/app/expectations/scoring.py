"""Who may call the scoring routes: the pages and API of blind technical scoring are for
experts (other roles 403; experts not on the tender's panel get 404, so the gate is the
role); the results also for staff of the tender's centre and supervisors (404 until the
identities are revealed)."""

from tests.app.expectations import CENTRE_A_READ

EXPERT = frozenset({"expert"})
RESULTS = EXPERT | CENTRE_A_READ

EXPECTED = {
    "scoring.index": EXPERT,
    "scoring.sheet": EXPERT,
    "scoring.bid": EXPERT,
    "scoring.document": EXPERT,
    "scoring.lock": EXPERT,
    "scoring.outlier_reason": EXPERT,
    "scoring.panel": EXPERT,
    "scoring.reopen": EXPERT,
    "scoring.unblind": EXPERT,
    "scoring.results": RESULTS,
    "scoring.finalise": EXPERT,
    "scoring.draw_lots": EXPERT,
    "api.scoring_get_sheet": EXPERT,
    "api.scoring_put_sheet": EXPERT,
    "api.scoring_document": EXPERT,
    "api.scoring_lock_sheet": EXPERT,
    "api.scoring_outlier_reason": EXPERT,
    "api.scoring_progress": EXPERT,
    "api.scoring_reopen": EXPERT,
    "api.scoring_unblind": EXPERT,
    "api.scoring_finalise": EXPERT,
    "api.scoring_draw_lots": EXPERT,
    "api.scoring_results": RESULTS,
}
