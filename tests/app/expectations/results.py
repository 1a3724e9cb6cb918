"""Who may call the results routes. The public notice is public (404 for drafts); the staff
page needs the tender's centre (supervisors read it); the POSTs need MANAGE_TENDERS in the
centre; the bidder's pages are for bidders (the operations refuse companies that did not
bid); a letter is readable by its own company and whoever oversees the centre; an
objection's attachment by the filing company and the centre's overseers (404 otherwise)."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ, PUBLIC

BIDDER = frozenset({"bidder"})

EXPECTED = {
    "results.notice": PUBLIC,
    "results.signed_notice": PUBLIC,
    "results.manage": CENTRE_A_READ,
    "results.publish_candidates": CENTRE_A_DECIDE,
    "results.decide": CENTRE_A_DECIDE,
    "results.reopen": CENTRE_A_DECIDE,
    "results.award": CENTRE_A_DECIDE,
    "results.fail": CENTRE_A_DECIDE,
    "results.retender": CENTRE_A_DECIDE,
    "results.bidder": BIDDER,
    "results.file_objection": BIDDER,
    "results.attachment": CENTRE_A_READ | BIDDER,
    "results.letter": BIDDER,
    "results.company_letter": CENTRE_A_READ,
    # API
    "api.get_results": PUBLIC,
    "api.publish_candidates": CENTRE_A_DECIDE,
    "api.publish_award": CENTRE_A_DECIDE,
    "api.declare_failed": CENTRE_A_DECIDE,
    "api.retender": CENTRE_A_DECIDE,
    "api.reopen_evaluation": CENTRE_A_DECIDE,
    "api.list_objections": CENTRE_A_READ | BIDDER,
    "api.file_objection": BIDDER,
    "api.decide_objection": CENTRE_A_DECIDE,
    "api.result_letter": BIDDER,
}
