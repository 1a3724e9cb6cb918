"""Who may call the records routes: the record page, its status and its file are for staff
of the tender's centre, supervisors, admins and the tender's panel members (an expert not
on the panel gets 404, so the gate is the role); staff of the centre (and admins; the chair
too, as an operation) request it again; panel members countersign, with a key they enrol
(experts only: the operations check the seat)."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ, PUBLIC

VIEWERS = CENTRE_A_READ | {"expert"}

EXPECTED = {
    "records.show": VIEWERS,
    "records.status": VIEWERS,
    "records.download": VIEWERS,
    "records.request_record": CENTRE_A_DECIDE,
    "records.countersign": frozenset({"expert"}),
    "records.countersign_finish": frozenset({"expert"}),
    # a panel member's own signing key: the page, the challenge, the enrolment
    "records.signing_key": frozenset({"expert"}),
    "records.enrolment_nonce": frozenset({"expert"}),
    "records.enrol_key": frozenset({"expert"}),
}

API_VIEWERS = frozenset({"staff_a", "staff_b", "supervisor", "admin", "expert"})

EXPECTED |= {
    "api.platform_signing_ca": PUBLIC,
    "api.platform_signing_crl": PUBLIC,
    "api.signing_key_nonce": frozenset({"expert"}),
    "api.signing_key": frozenset({"expert"}),
    "api.enrol_signing_key": frozenset({"expert"}),
    "api.prepare_countersignature": frozenset({"expert"}),
    "api.finish_countersignature": frozenset({"expert"}),
    # staff of another centre pass the role gate and get 404 (the tender is not theirs)
    "api.tender_records": API_VIEWERS,
    "api.tender_record_pdf": API_VIEWERS,
}
