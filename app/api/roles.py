"""Which roles reach which API endpoints (the operations check the centre scope)."""

from app.accounts.models import Role

ADMIN = (Role.ADMIN,)
VIEWERS = (Role.STAFF, Role.SUPERVISOR, Role.ADMIN)
DECIDERS = (Role.STAFF, Role.ADMIN)
SUPERVISION = (Role.SUPERVISOR, Role.ADMIN)
