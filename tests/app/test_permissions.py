"""Every URL rule of the app, called as every role: the expected allow/deny holds.

A new route without an entry in EXPECTED fails `test_every_route_has_an_expectation`.
"""

from __future__ import annotations

import pytest

from tests.app.expectations import ROLES, STAFF_ANY, merged
from tests.factories.walk import build_world, clients_by_role, denied, url_args

EXPECTED = merged()


def test_every_route_has_an_expectation(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - EXPECTED.keys() == set(), "add the new routes to EXPECTED"
    assert EXPECTED.keys() - endpoints == set(), "EXPECTED names routes that do not exist"


def test_every_non_public_blueprint_has_a_role_gate(app):
    for name, blueprint in app.blueprints.items():
        endpoints = {e for e in EXPECTED if e.startswith(name + ".")}
        if endpoints and all(EXPECTED[e] <= STAFF_ANY for e in endpoints):
            assert getattr(blueprint, "allowed_roles", None), f"{name} has no role gate"


@pytest.fixture
def world(app, make_centre, make_company, make_user, make_tender):
    return build_world(make_centre, make_company, make_user, make_tender)


def test_every_route_as_every_role(app, world):
    clients, tokens = clients_by_role(app, world)
    # Sign-out last, so every other call is made signed in.
    rules = sorted(
        app.url_map.iter_rules(), key=lambda r: (r.endpoint == "accounts.logout", r.rule)
    )
    failures = []
    for rule in rules:
        allowed = EXPECTED[rule.endpoint]
        api = rule.rule.startswith("/api/") and rule.endpoint != "openapi.spec"
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        path = rule.build(url_args(rule, world), append_unknown=False)[1]
        # Denied roles first: allowed POSTs may change the state the others would see.
        for role in sorted(ROLES, key=lambda r: r in allowed):
            for method in methods:
                headers = (
                    {"Authorization": f"Bearer {tokens[role]}"} if api and role in tokens else {}
                )
                kwargs = {"json": {}} if api and method != "GET" else {"data": {}}
                response = clients[role].open(path, method=method, headers=headers, **kwargs)
                response.close()
                if denied(response, api) == (role in allowed):
                    failures.append(f"{method} {path} as {role}: {response.status_code}")
    assert failures == [], "\n".join(failures)
