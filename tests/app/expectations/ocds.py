"""Open data (OCDS): the release package of a public tender and the bulk packages per
trading centre and month are public, like the portal."""

from tests.app.expectations import PUBLIC

EXPECTED = {
    "api.ocds_tender": PUBLIC,
    "api.ocds_centre": PUBLIC,
    "api.ocds_centre_month": PUBLIC,
}
