"""Who may call which route: one module per area, each with an EXPECTED dict
(endpoint -> roles allowed), merged by tests/app/test_permissions.py. The objects the walk
uses live in centre A: a pending company, a published tender with a document, a
registration of the bidder's company, an enquiry, a centre template."""

from __future__ import annotations

import importlib
import pkgutil

ROLES = ["anonymous", "bidder", "expert", "staff_a", "staff_b", "custodian", "supervisor", "admin"]
PUBLIC = frozenset(ROLES)
SIGNED_IN = PUBLIC - {"anonymous"}
STAFF_ANY = frozenset({"staff_a", "staff_b", "supervisor", "admin"})
CENTRE_A_READ = frozenset({"staff_a", "supervisor", "admin"})
CENTRE_A_DECIDE = frozenset({"staff_a", "admin"})
SUPERVISION = frozenset({"supervisor", "admin"})
ADMIN = frozenset({"admin"})


def merged() -> dict[str, frozenset[str]]:
    expected: dict[str, frozenset[str]] = {}
    for module in pkgutil.iter_modules(__path__):
        part = importlib.import_module(f"{__name__}.{module.name}").EXPECTED
        overlap = expected.keys() & part.keys()
        assert not overlap, f"endpoints listed twice: {overlap}"
        expected.update(part)
    return expected
