"""Which roles reach which API endpoints (the operations check the centre scope)."""

from app.accounts.models import Role

ADMIN = (Role.ADMIN,)
VIEWERS = (Role.STAFF, Role.SUPERVISOR, Role.ADMIN)
DECIDERS = (Role.STAFF, Role.ADMIN)
SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)
TENDER_MANAGERS = (Role.STAFF, Role.ADMIN)
TEMPLATE_EDITORS = (Role.STAFF, Role.ADMIN)
BIDDERS = (Role.BIDDER,)
# Staff see every registration of their centre's tenders; a bidder only its own.
REGISTRATION_VIEWERS = (*VIEWERS, Role.BIDDER)
