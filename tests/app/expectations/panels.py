"""The panel: staff of the tender's centre (and supervisors, read-only) see the panel page;
staff of the centre draw and remove; experts answer their own invitations (404 without
one); the replay JSON is public (404 until drawn). Staff list the pool and edit only their
own centre's experts."""

from tests.app.expectations import CENTRE_A_DECIDE, CENTRE_A_READ, PUBLIC

EXPERT = frozenset({"expert"})

EXPECTED = {
    "panels.tender": CENTRE_A_READ,
    "panels.draw": CENTRE_A_DECIDE,
    "panels.remove": CENTRE_A_DECIDE,
    "panels.draw_json": PUBLIC,
    "panels.pool": frozenset({"staff_a", "staff_b", "admin"}),
    "api.expert_pool": frozenset({"staff_a", "staff_b", "admin"}),
    # The expert is in centre A's pool: staff of centre B may not edit them.
    "api.expert_profile": CENTRE_A_DECIDE,
    "panels.invitations": EXPERT,
    "panels.accept": EXPERT,
    "panels.decline": EXPERT,
    "panels.declare": EXPERT,
}
