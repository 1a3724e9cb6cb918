"""The JSON API fuzzed from its own OpenAPI document (schemathesis), as every role, against
a drill database holding data: a published tender with a bid, an opened tender with a
seated panel, people of every role. Bounded for CI: `FUZZ_EXAMPLES` examples per operation
and role (default 3; derandomized, so a red run replays), no shrinking.

Checks: no server error, every status documented, a documented content type, a body that
conforms to the documented schema. Run longer: `FUZZ_EXAMPLES=25 make drills`."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from app.accounts import operations as account_ops
from app.accounts.models import Role
from app.bids.models import Bid
from app.extensions import db
from app.opening.models import EvaluatedBid
from app.tenders.models import TemplateVersion, TenderDocument, TenderRegistration
from tests.factories.bids import registered_bidder, submit
from tests.factories.evaluations import record_bond, seal_bid, seat_panel, use_goods_template
from tests.factories.opening import custodians, past_opening, start, unlock

pytestmark = [pytest.mark.drills, pytest.mark.postgres]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
ROLES = [Role.BIDDER, Role.STAFF, Role.CUSTODIAN, Role.EXPERT, Role.SUPERVISOR, Role.ADMIN]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_tokens: dict = {}


@pytest.fixture
def tokens(app, make_tender, make_user):
    """One API token per role, for people of one centre that has data (built once)."""
    if _tokens.get("app") is not app:
        opened = use_goods_template(make_tender())
        centre = opened.centre
        for price in ("100000.00", "120000.00", "130000.00"):  # three: fewer fail the tender
            bidder = registered_bidder(make_user, opened)
            submit(opened, bidder, seal_bid(opened, bidder, price))
            record_bond(opened, bidder)
        past_opening(opened)
        start(opened)
        for custodian in custodians(opened):
            if unlock(opened, custodian):  # the k-th share runs the opening job
                break
        experts = seat_panel(make_user, opened)
        open_tender = make_tender(centre=centre)
        bidder = registered_bidder(make_user, open_tender)
        submit(open_tender, bidder, seal_bid(open_tender, bidder, "90000.00"))
        people = {
            Role.BIDDER: bidder,
            Role.STAFF: make_user(Role.STAFF, centre=centre),
            Role.CUSTODIAN: make_user(Role.CUSTODIAN, centre=centre),
            Role.EXPERT: experts[0],
            Role.SUPERVISOR: make_user(Role.SUPERVISOR),
            Role.ADMIN: make_user(Role.ADMIN),
        }
        _tokens.clear()
        _tokens["app"] = app
        for role, user in people.items():
            _tokens[role] = account_ops.create_api_token(user, "fuzz")
        db.session.commit()
        tenders = [opened.id, open_tender.id]
        ids = {
            "tender_id": tenders,
            "bid_id": select(Bid.id).where(Bid.tender_id.in_(tenders)),
            "company_id": select(Bid.company_id).where(Bid.tender_id.in_(tenders)),
            "registration_id": select(TenderRegistration.id).where(
                TenderRegistration.tender_id.in_(tenders)
            ),
            "document_id": select(TenderDocument.id).where(TenderDocument.tender_id == opened.id),
            "code": select(EvaluatedBid.code).where(EvaluatedBid.tender_id == opened.id),
            "centre_id": [centre.id],
            "centre_code": [centre.code],
            "template_id": select(TemplateVersion.template_id).where(
                TemplateVersion.id == opened.template_version_id
            ),
        }
        _tokens["ids"] = {
            name: list(values) if isinstance(values, list) else list(db.session.scalars(values))
            for name, values in ids.items()
        }
    return _tokens


def fuzz(schema, tokens: dict) -> tuple[int, dict[str, str], dict[str, set]]:
    """Send `EXAMPLES` generated requests per operation as every role (and anonymously);
    returns the number of requests, the distinct failures (operation, role, check) and the
    statuses each operation answered."""
    sent = 0
    failures: dict[str, str] = {}
    statuses: dict[str, set] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(), pick=st.integers(min_value=0, max_value=7))
        def run(case, pick):
            send(case)
            # Again on the drill's real objects, so operations get past their 404.
            known = {
                name: values[pick % len(values)]
                for name, values in tokens["ids"].items()
                if values and name in (case.path_parameters or {})
            }
            if known:
                case.path_parameters = {**case.path_parameters, **known}
                send(case)

        def send(case):
            nonlocal sent
            for role in [*ROLES, None]:
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
                sent += 1
                try:
                    response = case.call_and_validate(headers=headers, checks=CHECKS)
                    statuses.setdefault(case.operation.label, set()).add(response.status_code)
                except (Exception, BaseExceptionGroup) as error:  # schemathesis' FailureGroup
                    parts = getattr(error, "exceptions", [error])
                    title = "; ".join(
                        sorted({str(part).strip().replace("\n", " ")[:140] for part in parts})
                    )
                    key = f"{case.operation.label} as {role or 'anonymous'}: {title}"
                    failures.setdefault(key, str(error)[:2000])

        run()
    return sent, failures, statuses


def test_api_conforms_to_its_openapi_document(drill_app, tokens):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", drill_app)
    sent, failures, statuses = fuzz(schema, tokens)
    gated = {401, 403, 404, 405, 422}
    shallow = sorted(label for label, seen in statuses.items() if seen <= gated)
    print(f"fuzz: {sent} requests, {len(statuses)} operations, {len(failures)} distinct failures")
    print(f"fuzz: {len(shallow)} operations answered only 401/403/404/405/422: {shallow}")
    assert not failures, "\n".join(sorted(failures))
