"""The tender API: tenders, enquiries, addenda, registrations, bonds, templates. The walk's
tender is published in centre A, its template is centre A's own, its registration is the
bidder's company's."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ, PUBLIC

BIDDER = frozenset({"bidder"})
# Any centre's staff may create tenders and list templates; the centre is checked on the
# objects they name.
TENDER_STAFF = frozenset({"staff_a", "staff_b", "admin"})
# Registered companies, and the staff and supervisors overseeing the tender.
DOCUMENT_READERS = frozenset({"bidder", "staff_a", "supervisor", "admin"})

EXPECTED = {
    "api.list_tenders": PUBLIC,
    "api.get_tender": PUBLIC,
    "api.get_commercial_fields": PUBLIC,
    "api.create_tender": TENDER_STAFF,
    "api.update_tender": CENTRE_A_DECIDE,
    "api.publish_tender": CENTRE_A_DECIDE,
    "api.cancel_tender": CENTRE_A_DECIDE,
    "api.publish_addendum": CENTRE_A_DECIDE,
    "api.download_document": DOCUMENT_READERS,
    "api.list_enquiries": PUBLIC,
    "api.ask_enquiry": BIDDER,
    "api.answer_enquiry": CENTRE_A_DECIDE,
    "api.register_for_tender": BIDDER,
    "api.list_registrations": CENTRE_A_READ | BIDDER,
    "api.record_bond": CENTRE_A_DECIDE,
    "api.list_templates": TENDER_STAFF,
    "api.get_template": CENTRE_A_DECIDE,
    "api.copy_template": CENTRE_A_DECIDE,
    "api.save_template_version": CENTRE_A_DECIDE,
}
