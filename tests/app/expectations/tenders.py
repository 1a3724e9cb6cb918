"""Staff pages for templates and tenders (/centre/...). Supervisors read; staff act on
their own centre; admins everywhere. The walk's objects belong to centre A."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ, STAFF_ANY

# Managing without an object of a centre yet: any staff, and admins (not supervisors).
MANAGERS = frozenset({"staff_a", "staff_b", "admin"})

EXPECTED = {
    "tenders.templates": STAFF_ANY,
    "tenders.template": CENTRE_A_READ,
    "tenders.copy_template": CENTRE_A_DECIDE,
    "tenders.edit_template": CENTRE_A_DECIDE,
    "tenders.preview_template": MANAGERS,
    "tenders.index": STAFF_ANY,
    "tenders.new_tender": MANAGERS,
    "tenders.show": CENTRE_A_READ,
    "tenders.edit": CENTRE_A_DECIDE,
    "tenders.publish": CENTRE_A_DECIDE,
    "tenders.addendum": CENTRE_A_DECIDE,
    "tenders.cancel": CENTRE_A_DECIDE,
    "tenders.upload_attachment": CENTRE_A_DECIDE,
    "tenders.answer_enquiry": CENTRE_A_DECIDE,
    "tenders.record_bond": CENTRE_A_DECIDE,
    "tenders.document": CENTRE_A_READ,
}
