"""A supervisor's intervention (app/tenders/suspension.py): suspend with a public reason,
everything stops (uploads, stage actions, the clock), and a second supervisor approves the
resumption, after which the deadlines resume with the time they had left. Time moves through
`CLOCK_OFFSET` (the server clock) or `tick(now)`; nothing sleeps."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.bids.models import Bid
from app.clock.service import tick
from app.core.errors import Conflict, OperationError
from app.core.types import CLOCK_OFFSET, timestamp, utcnow
from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.permissions import PermissionDenied
from app.results import operations as results_ops
from app.results.models import ResultNotice
from app.tenders import operations as tender_ops
from app.tenders.models import Notification, Tender, TenderStatus
from app.tenders.suspension import (
    SuspensionStatus,
    TenderSuspended,
    TenderSuspension,
    approve_resumption,
    request_resumption,
    suspend_tender,
    withdraw_request,
)
from tests.conftest import AuthActions
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc
from tests.factories.ocds import assert_valid, package_validator


def envelope(tender, bidder, price="900.00") -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    return lib_seal(key, tid(tender), uscc(bidder), price=price)


@contextmanager
def later(delta: timedelta):
    token = CLOCK_OFFSET.set(delta)
    try:
        yield
    finally:
        CLOCK_OFFSET.reset(token)


def actions(tender_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.object_type == "tender", AuditEvent.object_id == str(tender_id))
            .order_by(AuditEvent.seq)
        )
    )


def only_suspension() -> TenderSuspension:
    db.session.expire_all()
    return db.session.scalars(select(TenderSuspension)).one()


def reload(tender) -> Tender:
    db.session.expire_all()
    return db.session.get(Tender, tender.id)


@pytest.fixture
def world(app, make_tender, make_user):
    tender = make_tender()
    return {
        "tender": tender,
        "bidder": registered_bidder(make_user, tender),
        "a": make_user(Role.SUPERVISOR, full_name="Supervisor Ann"),
        "b": make_user(Role.SUPERVISOR, full_name="Supervisor Bo"),
        "c": make_user(Role.SUPERVISOR, full_name="Supervisor Cy"),
        "staff": make_user(Role.STAFF, centre=tender.centre),
    }


def test_suspension_stops_uploads_and_a_second_supervisor_resumes_with_the_time_left(app, world):
    tender, bidder, a, b = world["tender"], world["bidder"], world["a"], world["b"]
    deadline, opening = tender.submission_deadline, tender.opening_at
    with app.test_request_context():
        suspension = suspend_tender(a, tender, "  Complaint about the specification.  ")
        db.session.commit()
        assert suspension.reason == "Complaint about the specification."
        assert suspension.stage == TenderStatus.PUBLISHED

        with pytest.raises(TenderSuspended) as refused:
            submit(tender, bidder, envelope(tender, bidder))
        db.session.rollback()
        assert refused.value.code == "suspended"
        assert "Complaint about the specification." in str(refused.value.message)

        # Three hours later A asks to resume; A cannot approve their own suspension.
        with later(timedelta(hours=3)):
            request_resumption(a, tender, "resume", "The specification was corrected.")
            db.session.commit()
            with pytest.raises(Conflict) as same:
                approve_resumption(a, tender)
            db.session.rollback()
            assert same.value.code == "same_supervisor"
            assert reload(tender).submission_deadline == deadline
            approve_resumption(b, tender)
            db.session.commit()

    tender = reload(tender)
    assert suspension.status == SuspensionStatus.LIFTED
    assert suspension.approved_by_id == b.id
    shift = tender.submission_deadline - deadline
    assert timedelta(hours=3) - timedelta(seconds=2) <= shift <= timedelta(hours=3, seconds=2)
    assert shift == timedelta(seconds=suspension.paused_seconds)
    assert tender.opening_at - opening == shift
    # Bidding is open again.
    with app.test_request_context():
        assert submit(tender, bidder, envelope(tender, bidder)).id
    assert actions(tender.id)[-3:] == [
        "tender.suspended",
        "tender.resume_requested",
        "tender.resumed",
    ]
    assert verify_chain() is None


def test_the_requester_cannot_approve_either_and_a_withdrawn_request_keeps_it_suspended(app, world):
    tender, a, b, c = world["tender"], world["a"], world["b"], world["c"]
    with app.test_request_context():
        suspend_tender(a, tender, "Suspected collusion.")
        request_resumption(b, tender, "resume", "Cleared.")
        db.session.commit()
        for same in (a, b):
            with pytest.raises(Conflict) as refused:
                approve_resumption(same, tender)
            assert refused.value.code == "same_supervisor"
            db.session.rollback()
        with pytest.raises(Conflict) as twice:
            request_resumption(c, tender, "resume", "Again.")
        assert twice.value.code == "already_requested"
        db.session.rollback()
        withdraw_request(b, tender)
        db.session.commit()
        with pytest.raises(Conflict) as nothing:
            approve_resumption(c, tender)
        assert nothing.value.code == "not_requested"
        db.session.rollback()
    assert db.session.scalar(select(Tender.status).where(Tender.id == tender.id)) == "published"
    assert "tender.resume_request_withdrawn" in actions(tender.id)


def test_bad_suspensions_are_refused_and_store_nothing(app, world, make_tender, make_user):
    tender, a = world["tender"], world["a"]
    before = actions(tender.id)
    with app.test_request_context():
        with pytest.raises(OperationError) as empty:
            suspend_tender(a, tender, "   ")
        assert empty.value.code == "reason"
        db.session.rollback()
        with pytest.raises(OperationError):
            suspend_tender(a, tender, "x" * 2001)
        db.session.rollback()
        # Administrators and staff do not intervene: the supervisors' duty.
        for who in (make_user(Role.ADMIN), world["staff"], world["bidder"]):
            with pytest.raises(PermissionDenied):
                suspend_tender(who, tender, "No.")
            db.session.rollback()
        for status in ("draft", "awarded", "failed", "cancelled"):
            other = make_tender(status=status, keyed=False)
            with pytest.raises(Conflict) as late:
                suspend_tender(a, other, "Too late.")
            assert late.value.code == "status"
            db.session.rollback()
        suspend_tender(a, tender, "Once.")
        db.session.commit()
        with pytest.raises(Conflict) as again:
            suspend_tender(world["b"], tender, "Twice.")
        assert again.value.code == "already_suspended"
        db.session.rollback()
        with pytest.raises(OperationError) as bad_kind:
            request_resumption(world["b"], tender, "destroy", "Why not.")
        assert bad_kind.value.code == "kind"
        db.session.rollback()
        with pytest.raises(Conflict) as early:
            request_resumption(world["b"], tender, "reevaluate", "Redo.")
        assert early.value.code == "not_evaluating"
        db.session.rollback()
    assert actions(tender.id) == [*before, "tender.suspended"]


def test_every_stage_action_is_refused_even_one_that_forgot_to_ask(app, world):
    """`cancel_tender` and `publish_addendum` call no check of their own: the flush guard
    refuses their change of a suspended tender all the same."""
    tender, staff = world["tender"], world["staff"]
    with app.test_request_context():
        suspend_tender(world["a"], tender, "Inquiry.")
        db.session.commit()
        with pytest.raises(TenderSuspended):
            tender_ops.cancel_tender(staff, tender, "Changed our mind.")
            db.session.flush()
        db.session.rollback()
    assert reload(tender).status == TenderStatus.PUBLISHED


def test_the_clock_stands_still_while_suspended(app, world):
    tender, bidder = world["tender"], world["bidder"]
    with app.test_request_context():
        submit(tender, bidder, envelope(tender, bidder))
    tender.submission_deadline = utcnow() + timedelta(minutes=10)
    tender.opening_at = tender.submission_deadline + timedelta(hours=1)
    db.session.commit()
    deadline = tender.submission_deadline
    with app.test_request_context():
        suspend_tender(world["a"], tender, "Inquiry.")
        db.session.commit()
    # Past the old deadline and the old opening: nothing closes, nothing is late.
    report = tick(deadline + timedelta(hours=2))
    assert report.performed == [] and report.raised == []
    assert reload(tender).status == TenderStatus.PUBLISHED
    with app.test_request_context(), later(timedelta(hours=2)):
        request_resumption(world["a"], tender, "resume", "Inquiry closed.")
        approve_resumption(world["b"], tender)
        db.session.commit()
    tender = reload(tender)
    assert tender.submission_deadline - deadline >= timedelta(hours=2) - timedelta(seconds=2)
    # The ten minutes left are still there after the resumption, then the clock closes it.
    assert tick(utcnow() + timedelta(hours=2, minutes=5)).performed == []
    report = tick(tender.submission_deadline + timedelta(seconds=1))
    assert ("close", tender.id) in report.performed


def test_everyone_involved_is_told_and_the_public_sees_both_steps(app, client, world):
    tender, a, b = world["tender"], world["a"], world["b"]
    with app.test_request_context():
        suspend_tender(a, tender, "Complaint under review.")
        db.session.commit()
    told = set(
        db.session.scalars(
            select(Notification.user_id).where(Notification.title.contains(tender.reference))
        )
    )
    custodians = {c.user_id for c in tender.custodians}
    assert {world["bidder"].id, world["staff"].id, a.id, b.id} | custodians <= told

    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="suspension"' in page and "Complaint under review." in page
    assert 'id="countdown"' not in page  # no countdown to a deadline that stands still
    api = client.get(f"/api/v1/tenders/{tender.id}/suspensions").get_json()
    assert api["suspended"] is True
    assert api["current"]["reason"] == "Complaint under review."

    with app.test_request_context(), later(timedelta(hours=1)):
        request_resumption(a, tender, "resume", "Complaint dismissed.")
        approve_resumption(b, tender)
        db.session.commit()
    page = client.get(f"/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="suspension"' not in page and "Complaint dismissed." in page

    package = client.get(f"/api/v1/ocds/tenders/{tender.id}").get_json()
    assert_valid(package_validator(), package)  # OCDS 1.1 release package schema
    releases = package["releases"]
    by_id = {r["id"].rsplit(tender.ocid_suffix + "-", 1)[1]: r for r in releases}
    suspended, resumed = by_id["suspension-1"], by_id["resumption-1"]
    assert suspended["tag"] == ["tenderUpdate"] and resumed["tag"] == ["tenderUpdate"]
    assert "Complaint under review." in suspended["tender"]["amendments"][-1]["rationale"]
    assert resumed["tender"]["amendments"][-1]["id"] == "resumption-1"
    # Each release keeps the deadline in force at its date: only the resumption moves it.
    tender = reload(tender)
    shift = only_suspension().paused
    assert by_id["tender"]["tender"]["tenderPeriod"] == suspended["tender"]["tenderPeriod"]
    assert resumed["tender"]["tenderPeriod"]["endDate"] == timestamp(tender.submission_deadline)
    assert suspended["tender"]["tenderPeriod"]["endDate"] == timestamp(
        tender.submission_deadline - shift
    )


def test_the_pages_and_the_api_under_dual_control(app, world, make_user):
    tender, a, b = world["tender"], world["a"], world["b"]
    ann, bo = app.test_client(), app.test_client()
    AuthActions(ann).login(a)
    AuthActions(bo).login(b)
    page = ann.get(f"/supervision/tenders/{tender.id}")
    assert page.status_code == 200 and b"Suspend the tender" in page.data
    empty = ann.post(f"/supervision/tenders/{tender.id}/suspend", data={"reason": ""})
    assert empty.status_code == 400
    done = ann.post(f"/supervision/tenders/{tender.id}/suspend", data={"reason": "Probe."})
    assert done.status_code == 302
    asked = ann.post(
        f"/supervision/tenders/{tender.id}/resume-request",
        data={"kind": "resume", "note": "Probe over."},
    )
    assert asked.status_code == 302
    page = ann.get(f"/supervision/tenders/{tender.id}").get_data(as_text=True)
    assert "Dual control" in page and "Approve the resumption" not in page
    assert "Supervisor Ann" in page
    page = bo.get(f"/supervision/tenders/{tender.id}").get_data(as_text=True)
    assert "Approve the resumption" in page
    # The timeline names people and says what happened in words.
    assert "Suspended by the supervision authority" in page
    assert "tender.suspended" not in page
    refused = ann.post(f"/supervision/tenders/{tender.id}/resume-approve")
    assert refused.status_code in (302, 303)
    assert reload(tender).status == TenderStatus.PUBLISHED
    assert only_suspension().status == SuspensionStatus.REQUESTED
    assert bo.post(f"/supervision/tenders/{tender.id}/resume-approve").status_code in (302, 303)
    assert only_suspension().status == SuspensionStatus.LIFTED

    # The API: the same rules, JSON refusals.
    url = f"/api/v1/tenders/{tender.id}/suspension"
    bad = app.test_client().post(url, json={"reason": ""}, headers=token_for(a))
    assert bad.status_code == 422  # the schema refuses an empty reason
    made = app.test_client().post(url, json={"reason": "Second look."}, headers=token_for(a))
    assert made.status_code == 201 and made.get_json()["suspended"] is True
    app.test_client().post(url + "/resume-request", json={"note": "Looked."}, headers=token_for(a))
    same = app.test_client().post(url + "/approve", headers=token_for(a))
    assert same.status_code == 403 and same.get_json()["error"] == "same_supervisor"
    ok = app.test_client().post(url + "/approve", headers=token_for(b))
    assert ok.status_code == 200 and ok.get_json()["suspended"] is False
    admin = app.test_client().post(
        url, json={"reason": "x"}, headers=token_for(make_user(Role.ADMIN))
    )
    assert admin.status_code == 403


def test_a_reevaluation_needs_the_second_supervisor_then_goes_back_to_review(
    app, results_world, make_user
):
    w = results_world
    results_ops.publish_candidates(w.staff, w.tender)
    db.session.commit()
    other = make_user(Role.SUPERVISOR)
    with app.test_request_context():
        suspend_tender(w.supervisor, w.tender, "Scores look manipulated.")
        db.session.commit()
        # The objection window and the award wait.
        with pytest.raises(TenderSuspended):
            results_ops.publish_award(w.staff, w.tender)
        db.session.rollback()
        request_resumption(w.supervisor, w.tender, "reevaluate", "Panel must review again.")
        db.session.commit()
        assert db.session.get(Evaluation, w.tender.id).round == 1
        approve_resumption(other, w.tender)
        db.session.commit()
    evaluation = db.session.get(Evaluation, w.tender.id)
    assert evaluation.round == 2 and evaluation.stage == EvaluationStage.REVIEW
    assert reload(w.tender).status == TenderStatus.EVALUATING
    notices = db.session.scalars(select(ResultNotice).where(ResultNotice.tender_id == w.tender.id))
    assert all(n.superseded_at is not None for n in notices)
    reopened = db.session.scalar(
        select(AuditEvent.data).where(AuditEvent.action == "results.evaluation_reopened")
    )
    assert json.loads(reopened)["ordered_by"] == "supervision"


def test_while_suspended_the_api_refuses_uploads_clearly_and_every_page_still_reads(app, world):
    tender, bidder, staff = world["tender"], world["bidder"], world["staff"]
    with app.test_request_context():
        suspend_tender(world["a"], tender, "Pending a court order.")
        db.session.commit()
    api = app.test_client()
    whole = api.post(
        f"/api/v1/tenders/{tender.id}/bids",
        data=envelope(tender, bidder),
        headers={**token_for(bidder), "Content-Type": "application/octet-stream"},
    )
    assert whole.status_code == 409
    assert whole.get_json()["error"] == "suspended"
    assert "Pending a court order." in whole.get_json()["message"]
    resumable = api.post(
        f"/api/v1/tenders/{tender.id}/uploads", json={"size": 100}, headers=token_for(bidder)
    )
    assert resumable.status_code == 409 and resumable.get_json()["error"] == "suspended"
    assert db.session.scalar(select(func.count()).select_from(Bid)) == 0
    # Reading goes on for everyone: nothing a page does on a GET is refused.
    pages = {
        None: [f"/tenders/{tender.id}", f"/api/v1/tenders/{tender.id}/suspensions"],
        bidder: [f"/tenders/{tender.id}", f"/bids/tenders/{tender.id}"],
        staff: [f"/centre/tenders/{tender.id}", f"/opening/tenders/{tender.id}"],
        world["b"]: [f"/supervision/tenders/{tender.id}", "/supervision/"],
    }
    for user, urls in pages.items():
        client = app.test_client()
        if user is not None:
            AuthActions(client).login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            if url.startswith(("/centre/", "/bids/", "/opening/")):
                # Where people act on the tender, the page says why nothing can be done.
                assert 'id="suspended-banner"' in response.text, url
                assert "Pending a court order." in response.text


def test_the_evaluation_period_does_not_count_the_suspended_time(app, world):
    from app.clock.models import ClockAlert

    tender = world["tender"]
    started = utcnow() - timedelta(days=11)
    tender.status = TenderStatus.EVALUATING
    tender.evaluation_days = 10
    db.session.add(Evaluation(tender_id=tender.id, started_at=started))
    db.session.commit()
    with app.test_request_context(), later(timedelta(days=-3)):
        suspend_tender(world["a"], tender, "Inquiry.")
        db.session.commit()
    with app.test_request_context(), later(timedelta(days=-1)):
        request_resumption(world["a"], tender, "resume", "Done.")
        approve_resumption(world["b"], tender)
        db.session.commit()
    # Eleven days since the start, two of them suspended: nine count, within the ten.
    tick()
    alerts = select(ClockAlert).where(
        ClockAlert.tender_id == tender.id, ClockAlert.kind == "evaluation_overdue"
    )
    assert db.session.scalars(alerts).all() == []
    tick(utcnow() + timedelta(days=1, hours=1))
    assert len(db.session.scalars(alerts).all()) == 1


def test_a_supervisor_intervenes_only_within_its_jurisdiction(
    app, make_centre, make_tender, make_user
):
    city = make_centre(level="city")
    east = make_centre(level="county", parent=city)
    west = make_centre(level="county", parent=city)
    town = make_centre(level="township", parent=east)
    east_supervisor = make_user(Role.SUPERVISOR, centre_id=east.id)
    city_supervisor = make_user(Role.SUPERVISOR, centre_id=city.id)
    west_tender, town_tender = make_tender(centre=west), make_tender(centre=town)
    with app.test_request_context():
        with pytest.raises(PermissionDenied):
            suspend_tender(east_supervisor, west_tender, "Not mine.")
        db.session.rollback()
        suspend_tender(east_supervisor, town_tender, "A township of my county.")
        request_resumption(east_supervisor, town_tender, "resume", "Fine.")
        db.session.commit()
        # The city's supervisor oversees the township too: it may approve.
        approve_resumption(city_supervisor, town_tender)
        db.session.commit()
    client = app.test_client()
    AuthActions(client).login(east_supervisor)
    assert client.get(f"/supervision/tenders/{west_tender.id}").status_code == 404
    assert client.get(f"/supervision/tenders/{town_tender.id}").status_code == 200
