"""The public portal and open data. Documents: registered companies (the walk's bidder is
registered) and the staff / supervisors who oversee the tender's centre; anonymous callers
are sent to sign in, everyone else gets a 403 with the reason."""

from tests.app.expectations import PUBLIC

DOCUMENT_READERS = frozenset({"bidder", "staff_a", "supervisor", "admin"})

EXPECTED = {
    "portal.tenders": PUBLIC,
    "portal.tender": PUBLIC,
    "portal.tender_status": PUBLIC,
    "portal.download_document": DOCUMENT_READERS,
    "portal.centre_feed": PUBLIC,
    "portal.category_feed": PUBLIC,
}

# The audit log's signed checkpoints and a finished tender's audit export and verification
# bundle: public (404 until there is one).
EXPECTED.update(
    {
        "portal.checkpoints": PUBLIC,
        "portal.checkpoints_json": PUBLIC,
        "portal.checkpoint": PUBLIC,
        "portal.tender_audit": PUBLIC,
        "portal.verification_bundle": PUBLIC,
        "portal.cancellation_notice": PUBLIC,
    }
)
