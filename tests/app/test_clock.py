"""The clock (app/clock): each time-driven step performed once at its time, through the
normal operations, audited with the time it was due and the time it ran; two ticks at once,
a clock down then back, a clock moving backwards and a failing step.

Time is controlled by passing `now` to `tick` (the server clock `utcnow` for the rest);
nothing sleeps."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.clock.models import ClockAlert, ClockStep
from app.clock.service import tick
from app.core.cache import GENERATION_KEY
from app.core.types import utcnow
from app.extensions import db, redis_client
from app.tenders.models import Notification, Tender, TenderDocument, TenderStatus
from tests.conftest import build_app, dispose
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def events(action: str, tender_id: int) -> list[dict]:
    rows = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.object_id == str(tender_id))
        .order_by(AuditEvent.seq)
    )
    return [json.loads(row.data) for row in rows]


def seal_for(tender, bidder, price: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = X25519PublicKey.from_public_bytes(public_key(tender))
    return lib_seal(key, tid(tender), uscc(bidder), price=price)


@pytest.fixture
def tender(make_tender):
    return make_tender()


@pytest.fixture
def bidder(make_user, tender):
    return registered_bidder(make_user, tender)


def deadline_at(tender, deadline) -> None:
    tender.submission_deadline = deadline
    tender.opening_at = deadline + timedelta(hours=1)
    db.session.commit()


def reload(tender) -> Tender:
    db.session.expire_all()
    return db.session.get(Tender, tender.id)


def sealing_records(tender) -> int:
    return count(
        TenderDocument,
        TenderDocument.tender_id == tender.id,
        TenderDocument.kind == "sealing_record",
    )


# --- the bid deadline ----------------------------------------------------------------------


def test_deadline_closes_then_seals_once_audited_with_due_and_ran_times(
    app, client, tender, bidder
):
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(minutes=5)
    deadline_at(tender, deadline)
    grace = timedelta(seconds=app.config["SEALING_GRACE_SECONDS"])

    assert tick(deadline - timedelta(seconds=1)).performed == []
    assert reload(tender).status == TenderStatus.PUBLISHED

    generation = int(redis_client.client.get(GENERATION_KEY) or 0)
    at_deadline = deadline + timedelta(seconds=3)
    report = tick(at_deadline)
    assert report.performed == [("close", tender.id)]
    assert reload(tender).status == TenderStatus.CLOSED
    assert sealing_records(tender) == 0  # envelopes received in time may still be committing
    assert int(redis_client.client.get(GENERATION_KEY)) > generation  # portal cache dropped

    sealed_at = deadline + grace + timedelta(seconds=2)
    assert tick(sealed_at).performed == [("seal", tender.id)]
    assert sealing_records(tender) == 1
    steps = events("clock.step", tender.id)
    assert steps == [
        {"step": "close", "due_at": deadline.isoformat(), "ran_at": at_deadline.isoformat()},
        {"step": "seal", "due_at": (deadline + grace).isoformat(), "ran_at": sealed_at.isoformat()},
    ]
    # The sealing record is public at once: the API serves it with the bid's hash.
    record = client.get(f"/api/v1/tenders/{tender.id}/sealing-record")
    assert record.status_code == 200
    assert len(json.loads(record.data)["record"]["leaves"]) == 1

    again = tick(sealed_at + timedelta(minutes=1))
    assert again.performed == [] and again.failed == []
    assert sealing_records(tender) == 1 and len(events("tender.closed", tender.id)) == 1
    assert verify_chain() is None


def test_a_late_envelope_is_refused_with_the_server_time_once_closed(app, tender, bidder):
    from app.core.errors import OperationError

    deadline = utcnow() - timedelta(seconds=1)
    deadline_at(tender, deadline)
    tick()
    with app.test_request_context(), pytest.raises(OperationError) as refused:
        submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    assert refused.value.code == "deadline_passed"
    assert "UTC" in str(refused.value.message)


def test_the_portal_list_page_and_ocds_show_the_close_and_the_sealing_record_at_once(
    app, client, tender, bidder
):
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(minutes=1)
    deadline_at(tender, deadline)
    client.get("/tenders/")
    assert client.get("/tenders/").headers["X-Portal-Cache"] == "hit"

    tick(deadline + timedelta(seconds=1))
    listing = client.get("/tenders/")
    assert listing.headers["X-Portal-Cache"] == "miss"  # dropped by the step, not by age

    grace = timedelta(seconds=app.config["SEALING_GRACE_SECONDS"])
    tick(deadline + grace + timedelta(seconds=1))
    root = events("tender.sealed", tender.id)[0]["root"]
    page = client.get(f"/tenders/{tender.id}")
    assert page.status_code == 200 and root.encode() in page.data
    package = client.get(f"/api/v1/ocds/tenders/{tender.id}").json
    sealed = [r for r in package["releases"] if r["id"].endswith("sealed")]
    assert len(sealed) == 1 and sealed[0]["tag"] == ["tenderUpdate"]
    documents = sealed[0]["tender"]["documents"]
    record = [d for d in documents if d["documentType"] == "submissionDocuments"]
    assert len(record) == 1 and root in record[0]["description"]
    assert record[0]["url"].endswith(f"/api/v1/tenders/{tender.id}/sealing-record")


# --- the opening time ----------------------------------------------------------------------


def test_opening_time_notifies_custodians_staff_and_bidders_once(
    app, make_user, tender, bidder, outbox
):
    staff = make_user(Role.STAFF, centre=tender.centre)
    other_centre_staff = make_user(Role.STAFF)
    deadline = utcnow() - timedelta(hours=2)
    deadline_at(tender, deadline)
    opening = tender.opening_at

    tick(opening - timedelta(seconds=1))
    assert count(ClockStep) == 0 and len(outbox) == 0

    report = tick(opening + timedelta(seconds=5))
    assert ("opening_notice", tender.id) in report.performed
    notified = set(db.session.scalars(select(Notification.user_id)))
    custodian_ids = {c.user_id for c in reload(tender).custodians}
    assert custodian_ids | {staff.id, bidder.id, tender.created_by_id} <= notified
    assert other_centre_staff.id not in notified
    recipients = {message.to[0] for message in outbox.messages()}
    assert bidder.email in recipients and staff.email in recipients
    bodies = {message.to[0]: message.body for message in outbox.messages()}
    assert f"/opening/tenders/{tender.id}" in bodies[bidder.email]
    assert "unlock your share" not in bodies[bidder.email]
    step = db.session.scalar(select(ClockStep))
    assert step.due_at == opening and step.ran_at == opening + timedelta(seconds=5)

    sent = len(outbox)
    tick(opening + timedelta(minutes=1))
    assert len(outbox) == sent and count(ClockStep) == 1


# --- overdue alerts ------------------------------------------------------------------------


def test_an_opening_not_started_raises_one_alert_resolved_when_it_starts(
    app, client, auth, tender, bidder
):
    from tests.factories.opening import staff_of

    deadline_at(tender, utcnow() - timedelta(hours=3))
    opening = reload(tender).opening_at
    tick(opening + timedelta(minutes=29))
    assert count(ClockAlert, ClockAlert.kind == "opening_not_started") == 0
    report = tick(opening + timedelta(minutes=31))
    assert ("opening_not_started", tender.id) in report.raised
    tick(opening + timedelta(minutes=40))
    alert = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "opening_not_started"))
    assert alert.resolved_at is None
    assert count(ClockAlert, ClockAlert.kind == "opening_not_started") == 1

    # The centre's staff see it on their page and in the API.
    staff = staff_of(tender)
    auth.login(staff)
    page = client.get("/clock/alerts")
    assert page.status_code == 200 and b"opening_not_started" in page.data
    from app.accounts import operations as account_ops

    token = account_ops.create_api_token(staff, "t")
    db.session.commit()
    listed = client.get("/api/v1/clock/alerts", headers={"Authorization": f"Bearer {token}"})
    assert [a["kind"] for a in listed.json["alerts"]] == ["opening_not_started"]

    # The opening starts (the staff action); the next tick resolves the alert.
    from app.opening import operations as opening_ops

    with app.test_request_context():
        opening_ops.start_opening(staff, reload(tender))
    db.session.commit()
    report = tick(opening + timedelta(minutes=41))
    assert ("opening_not_started", tender.id) in report.resolved
    db.session.expire_all()
    assert db.session.get(ClockAlert, alert.id).resolved_at is not None
    listed = client.get("/api/v1/clock/alerts", headers={"Authorization": f"Bearer {token}"})
    assert listed.json["alerts"] == []


def test_staff_of_another_centre_do_not_see_the_alert(app, client, auth, make_user, tender):
    deadline_at(tender, utcnow() - timedelta(hours=3))
    tick()
    assert count(ClockAlert, ClockAlert.kind == "opening_not_started") == 1
    auth.login(make_user(Role.STAFF))
    assert b"opening_not_started" not in client.get("/clock/alerts").data


# --- faults --------------------------------------------------------------------------------


def test_a_clock_down_for_hours_catches_up_every_step_exactly_once(app, tender, bidder, outbox):
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline_at(tender, utcnow() - timedelta(hours=3))
    report = tick()
    assert report.performed == [
        ("close", tender.id),
        ("seal", tender.id),
        ("opening_notice", tender.id),
    ]
    assert report.failed == []
    # Sealed hours after the deadline: the lateness stays on record, as a resolved alert.
    late = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "sealing_late"))
    assert late is not None and late.resolved_at is not None
    later = tick(utcnow() + timedelta(minutes=1))
    assert later.performed == []
    assert sealing_records(tender) == 1 and count(ClockStep) == 1


def test_a_clock_moving_backwards_neither_undoes_nor_redoes(app, tender, bidder):
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline_at(tender, utcnow() - timedelta(hours=3))
    now = utcnow()
    first = tick(now)
    assert len(first.performed) == 3
    alerts = {(a.kind, a.resolved_at) for a in db.session.scalars(select(ClockAlert))}
    backwards = tick(now - timedelta(hours=5))
    assert backwards.performed == [] and backwards.resolved == [] and backwards.raised == []
    assert reload(tender).status == TenderStatus.CLOSED and sealing_records(tender) == 1
    assert {(a.kind, a.resolved_at) for a in db.session.scalars(select(ClockAlert))} == alerts


def test_a_failing_seal_is_an_alert_with_retries_until_it_succeeds(
    app, client, auth, tender, bidder, tmp_path, monkeypatch
):
    from tests.factories.opening import staff_of

    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline_at(tender, utcnow() - timedelta(minutes=10))
    # A real fault: the blob store's directory is a file, so the record cannot be stored.
    broken = tmp_path / "not-a-directory"
    broken.write_text("")
    monkeypatch.setitem(app.config, "BLOB_DIR", str(broken))

    report = tick()
    assert ("close", tender.id) in report.performed  # the other steps go on
    assert report.failed == [("seal", tender.id)]
    assert sealing_records(tender) == 0
    alert = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "failed_seal"))
    assert alert.attempts == 1 and alert.resolved_at is None and alert.detail

    tick()  # still failing: the same alert, one more attempt
    db.session.expire_all()
    assert count(ClockAlert, ClockAlert.kind == "failed_seal") == 1
    assert db.session.get(ClockAlert, alert.id).attempts == 2

    auth.login(staff_of(tender))
    page = client.get("/clock/alerts")
    assert b"failed_seal" in page.data and b"Retry now" in page.data

    # Fixed; the staff's retry queues a tick (inline here), which seals and resolves.
    monkeypatch.setitem(app.config, "BLOB_DIR", "")
    retried = client.post(f"/clock/alerts/{alert.id}/retry")
    assert retried.status_code == 302
    from tests.conftest import run_queued_jobs

    run_queued_jobs()
    db.session.expire_all()
    assert sealing_records(tender) == 1
    assert db.session.get(ClockAlert, alert.id).resolved_at is not None
    assert tick().performed == []
    assert len(events("tender.sealed", tender.id)) == 1


def test_a_clock_killed_mid_step_leaves_nothing_and_the_next_tick_does_it_once(
    app, tender, bidder, monkeypatch
):
    from app.bids import operations as bid_ops

    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline_at(tender, utcnow() - timedelta(minutes=10))
    real_seal = bid_ops.seal_bids

    def killed_after_writing(tender):
        real_seal(tender)  # the record is written (flushed), then the process dies
        raise SystemExit("killed")

    monkeypatch.setattr(bid_ops, "seal_bids", killed_after_writing)
    with pytest.raises(SystemExit):
        tick()
    db.session.rollback()  # what the dead process's connection does
    assert sealing_records(tender) == 0 and events("tender.sealed", tender.id) == []
    assert reload(tender).status == TenderStatus.CLOSED  # the close step had committed

    monkeypatch.setattr(bid_ops, "seal_bids", real_seal)
    assert ("seal", tender.id) in tick().performed
    assert tick().performed == []
    assert sealing_records(tender) == 1 and len(events("tender.sealed", tender.id)) == 1
    assert verify_chain() is None


def test_a_supervisor_reads_alerts_but_cannot_retry(app, client, auth, make_user, tender):
    deadline_at(tender, utcnow() - timedelta(hours=3))
    tick()
    alert = db.session.scalar(select(ClockAlert))
    auth.login(make_user(Role.SUPERVISOR))
    assert b"opening_not_started" in client.get("/clock/alerts").data
    assert client.post(f"/clock/alerts/{alert.id}/retry").status_code == 403


def test_the_opening_page_no_longer_writes(app, client, tender):
    deadline_at(tender, utcnow() - timedelta(minutes=1))
    assert client.get(f"/opening/tenders/{tender.id}").status_code == 200
    assert reload(tender).status == TenderStatus.PUBLISHED  # the clock closes it, not a GET
    tick()
    assert reload(tender).status == TenderStatus.CLOSED


def test_flask_clock_once_ticks(app, runner, tender):
    deadline_at(tender, utcnow() - timedelta(minutes=1))
    result = runner.invoke(args=["clock", "--once"])
    assert result.exit_code == 0, result.output
    assert f"close tender {tender.id}" in result.output
    assert reload(tender).status == TenderStatus.CLOSED


# --- two ticks at once, on a database of their own (real connections, real locks) ----------


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    app = build_app(tmp_path_factory, "clock")
    yield app
    dispose(app)


def _minimal_tender(deadline, name: str = "clk"):
    from decimal import Decimal

    from app.centres.models import TradingCentre
    from app.tenders.models import TemplateVersion, TenderTemplate

    centre = TradingCentre(code=name.upper(), name=f"Centre {name}", level="city")
    db.session.add(centre)
    db.session.flush()
    from app.accounts import security
    from app.accounts.models import User

    staff = User(
        email=f"{name}-staff@example.com",
        full_name="Clock Staff",
        password_hash=security.hash_password("correct horse battery"),
        role=Role.STAFF,
        centre_id=centre.id,
    )
    db.session.add(staff)
    template = TenderTemplate(centre_id=centre.id, key=name, name="T", category="goods")
    db.session.add(template)
    db.session.flush()
    version = TemplateVersion(
        template_id=template.id, number=1, yaml_text="key: t", sha256="0" * 64
    )
    db.session.add(version)
    db.session.flush()
    tender = Tender(
        centre_id=centre.id,
        template_version_id=version.id,
        reference=f"{name.upper()}-1",
        title="Clock tender",
        category="goods",
        direction="lowest_wins",
        status=TenderStatus.PUBLISHED,
        budget=Decimal("1000.00"),
        publication_at=deadline - timedelta(days=20),
        enquiry_deadline=deadline - timedelta(days=5),
        submission_deadline=deadline,
        opening_at=deadline + timedelta(hours=1),
        created_by_id=staff.id,
        published_at=deadline - timedelta(days=20),
    )
    db.session.add(tender)
    db.session.commit()
    return tender.id


def test_two_ticks_at_once_perform_each_step_once(shared_app):
    deadline = utcnow() - timedelta(hours=3)
    with shared_app.app_context():
        tender_id = _minimal_tender(deadline)
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        try:
            with shared_app.app_context():
                barrier.wait()
                reports.append(tick())
                db.session.remove()
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    performed = sorted(step for report in reports for step in report.performed)
    assert performed == [
        ("close", tender_id),
        ("opening_notice", tender_id),
        ("seal", tender_id),
    ]
    assert [r.failed for r in reports] == [[], []]
    with shared_app.app_context():
        assert count(TenderDocument, TenderDocument.kind == "sealing_record") == 1
        assert count(ClockStep) == 1
        assert count(AuditEvent, AuditEvent.action == "clock.step") == 3
        assert count(AuditEvent, AuditEvent.action == "tender.closed") == 1
        assert count(ClockAlert, ClockAlert.kind == "opening_not_started") == 1
        assert verify_chain() is None
        db.session.remove()


def test_the_in_process_clock_and_the_rq_job_tick(shared_app):
    """`make run`'s thread (`run_forever`) and the RQ job each perform a due step."""
    from app.clock.cli import run_forever
    from app.clock.jobs import tick_job

    with shared_app.app_context():
        tender_id = _minimal_tender(utcnow() - timedelta(seconds=1), "thread")
        db.session.remove()
    stop = threading.Event()
    reports = []

    def first(report):
        reports.append(report)
        stop.set()

    thread = threading.Thread(target=run_forever, args=(shared_app, stop, 3600, first))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert ("close", tender_id) in reports[0].performed
    with shared_app.app_context():
        assert db.session.get(Tender, tender_id).status == TenderStatus.CLOSED
        assert tick_job()["performed"] == []  # nothing left: the job ticks idempotently
        db.session.remove()


# --- windows and overdue alerts after the evaluation ----------------------------------------


def test_results_windows_and_overdue_alerts_follow_the_state(app, results_world, outbox):
    """The record is signed: candidates are overdue after 3 days until published; the
    objection window closes and the staff are told once; an objection left unanswered and
    the award not made are alerts until the staff act."""
    from app.results import operations as results_ops
    from tests.factories.results import close_window

    w = results_world
    signed = w.record.completed_at
    assert tick(signed + timedelta(days=2, hours=23)).raised == []
    report = tick(signed + timedelta(days=3, minutes=1))
    assert ("candidates_overdue", w.tender.id) in report.raised

    with app.test_request_context():
        results_ops.publish_candidates(w.staff, w.tender)
    db.session.commit()
    report = tick()
    assert ("candidates_overdue", w.tender.id) in report.resolved

    with app.test_request_context():
        results_ops.file_objection(w.bidders[0], reload(w.tender), "The ranking is wrong.", [])
    db.session.commit()
    close_window(w.tender)
    outbox.clear()
    now = utcnow()
    report = tick(now)
    assert [step for step, _ in report.performed] == ["candidates_window"]
    recipients = {m.to[0] for m in outbox.messages()}
    assert w.staff.email in recipients  # the centre's staff act next; bidders are not told
    assert not recipients & {b.email for b in w.bidders}
    assert tick(now + timedelta(minutes=1)).performed == []  # told once

    report = tick(now + timedelta(days=6))
    assert {("award_overdue", w.tender.id), ("objection_unanswered", w.tender.id)} <= set(
        report.raised
    )
    from app.results.models import Objection

    objection = db.session.scalar(select(Objection))
    with app.test_request_context():
        results_ops.decide_objection(
            w.staff, objection, "dismissed", "The ranking follows the rules."
        )
        results_ops.publish_award(w.staff, reload(w.tender))
    db.session.commit()
    report = tick(now + timedelta(days=6, minutes=1))
    assert {("award_overdue", w.tender.id), ("objection_unanswered", w.tender.id)} <= set(
        report.resolved
    )
    assert count(ClockAlert, ClockAlert.resolved_at.is_(None)) == 0


def test_the_enquiry_deadline_tells_the_staff_once(app, make_user, tender, outbox):
    staff = make_user(Role.STAFF, centre=tender.centre)
    enquiry_deadline = utcnow() - timedelta(minutes=1)
    tender.enquiry_deadline = enquiry_deadline
    db.session.commit()
    report = tick()
    assert report.performed == [("enquiry_window", tender.id)]
    assert staff.email in {m.to[0] for m in outbox.messages()}
    assert events("clock.step", tender.id)[0]["due_at"] == enquiry_deadline.isoformat()
    assert tick().performed == []


def test_the_low_price_and_opening_windows_tell_the_next_actors_once(
    app, results_world, make_user, outbox
):
    """Rows as the evaluation and the opening leave them: a price justification requested
    and not answered in time; an opening completed more than its objection window ago."""
    from app.bids.models import Bid
    from app.evaluations.models import Evaluation
    from app.opening.models import EvaluatedBid, OpeningSession, OpeningStatus

    w = results_world
    chair = make_user(Role.EXPERT)
    db.session.get(Evaluation, w.tender.id).chair_id = chair.id
    bid = db.session.scalar(select(Bid).where(Bid.tender_id == w.tender.id))
    due = utcnow() - timedelta(minutes=2)
    evaluated = EvaluatedBid(
        tender_id=w.tender.id,
        bid_id=bid.id,
        code="T-LOW",
        low_price_status="requested",
        low_price_due_at=due,
    )
    completed = utcnow() - timedelta(minutes=app.config["OPENING_OBJECTION_MINUTES"] + 1)
    db.session.add_all(
        [
            evaluated,
            OpeningSession(
                tender_id=w.tender.id,
                started_by_id=w.staff.id,
                wrap_salt="00" * 32,
                status=OpeningStatus.COMPLETED,
                completed_at=completed,
            ),
        ]
    )
    db.session.commit()
    report = tick()
    assert sorted(step for step, _ in report.performed) == ["low_price_window", "opening_window"]
    recipients = [m.to[0] for m in outbox.messages()]
    assert chair.email in recipients and w.staff.email in recipients
    steps = {e["step"]: e for e in events("clock.step", w.tender.id)}
    assert steps["low_price_window"]["due_at"] == due.isoformat()
    assert steps["low_price_window"]["key"] == str(evaluated.id)
    assert tick().performed == []


def test_a_bid_reminder_goes_once_to_registered_companies_without_a_bid(
    app, make_user, tender, bidder, outbox, monkeypatch
):
    idle = registered_bidder(make_user, tender)
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(hours=30)
    deadline_at(tender, deadline)
    assert tick(deadline - timedelta(hours=23)).performed == []  # off by default
    monkeypatch.setitem(app.config, "CLOCK_BID_REMINDER_HOURS", 24)
    assert tick(deadline - timedelta(hours=25)).performed == []
    report = tick(deadline - timedelta(hours=23))
    assert report.performed == [("bid_reminder", tender.id)]
    assert [m.to[0] for m in outbox.messages()] == [idle.email]
    assert tick(deadline - timedelta(hours=1)).performed == []


# --- reminders: score sheets, certificates; the first deployment's catch-up -----------------


def test_experts_with_unlocked_sheets_are_reminded_once_before_the_evaluation_ends(
    app, client, auth, make_user, make_tender, outbox
):
    from app.evaluations.models import Evaluation, EvaluationStage, ScoreSheet
    from app.panels.models import MemberStatus, PanelMember

    tender = make_tender(status=TenderStatus.EVALUATING, keyed=False)
    started = utcnow() - timedelta(days=1)
    db.session.add(
        Evaluation(tender_id=tender.id, stage=EvaluationStage.SCORING, started_at=started)
    )
    locked, unlocked, unbegun, declined = (make_user(Role.EXPERT) for _ in range(4))
    for position, (user, status) in enumerate(
        [
            (locked, MemberStatus.ACCEPTED),
            (unlocked, MemberStatus.ACCEPTED),
            (unbegun, MemberStatus.ACCEPTED),
            (declined, MemberStatus.DECLINED),
        ],
        start=1,
    ):
        db.session.add(
            PanelMember(tender_id=tender.id, user_id=user.id, status=status, position=position)
        )
    db.session.add_all(
        [
            ScoreSheet(tender_id=tender.id, user_id=locked.id, locked_at=utcnow()),
            ScoreSheet(tender_id=tender.id, user_id=unlocked.id),
        ]
    )
    db.session.commit()
    end = started + timedelta(days=reload(tender).evaluation_days)
    hours = app.config["CLOCK_SHEET_REMINDER_HOURS"]
    assert hours == 24  # the documented default

    assert tick(end - timedelta(hours=hours + 1)).performed == []
    report = tick(end - timedelta(hours=hours - 1))
    assert report.performed == [("sheet_reminder", tender.id)]
    assert sorted(m.to[0] for m in outbox.messages()) == sorted([unlocked.email, unbegun.email])
    assert f"/scoring/tenders/{tender.id}" in outbox.messages()[0].body
    notified = set(db.session.scalars(select(Notification.user_id)))
    assert notified == {unlocked.id, unbegun.id}
    step = events("clock.step", tender.id)[0]
    assert step["step"] == "sheet_reminder"
    assert step["due_at"] == (end - timedelta(hours=hours)).isoformat()

    sent = len(outbox)
    assert tick(end - timedelta(hours=1)).performed == []  # once, not at every tick
    assert len(outbox) == sent

    # In the app: on the expert's score sheets page, linking to the sheet.
    auth.login(unlocked)
    page = client.get("/scoring/").get_data(as_text=True)
    assert f"Lock your score sheet of tender {tender.reference}" in page
    assert f"/scoring/tenders/{tender.id}" in page
    auth.logout()
    auth.login(locked)
    assert "Lock your score sheet" not in client.get("/scoring/").get_data(as_text=True)


def test_a_certificate_expiring_is_reminded_once_per_threshold_not_when_renewed(
    app, make_company, make_user, outbox
):
    from datetime import date

    from app.companies.models import CompanyCertificate
    from app.core.types import utcnow as now_

    today = now_().date()
    expiring, renewed, distant = make_company(), make_company(), make_company()
    owner, colleague = make_user(company=expiring), make_user(company=expiring)
    renewed_user, distant_user = make_user(company=renewed), make_user(company=distant)
    ko = make_user(company=make_company(), locale="ko")

    def certificate(company, name, expires_on: date | None) -> CompanyCertificate:
        row = CompanyCertificate(
            company_id=company.id, name=name, number="N-1", expires_on=expires_on
        )
        db.session.add(row)
        return row

    soon = certificate(expiring, "Safety licence", today + timedelta(days=20))
    certificate(renewed, "ISO 9001", today + timedelta(days=10))
    certificate(renewed, "ISO 9001", today + timedelta(days=375))  # the renewal
    certificate(distant, "Quality", today + timedelta(days=60))
    certificate(distant, "No expiry", None)
    korean = certificate(ko.company, "Licence", today + timedelta(days=5))
    db.session.commit()

    now = now_()
    report = tick(now)
    assert sorted(report.performed) == sorted(
        [("certificate_reminder", soon.id), ("certificate_reminder", korean.id)]
    )
    recipients = sorted(m.to[0] for m in outbox.messages())
    assert recipients == sorted([owner.email, colleague.email, ko.email])
    assert renewed_user.email not in recipients and distant_user.email not in recipients
    korean_mail = next(m for m in outbox.messages() if m.to[0] == ko.email)
    assert "Licence" in korean_mail.subject and "Your certificate" not in korean_mail.subject
    audited = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "clock.step", AuditEvent.object_type == "company"
        )
    ).all()
    due = {json.loads(e.data)["due_at"] for e in audited}
    assert all(d.endswith("T16:00:00+00:00") for d in due)  # local midnight (UTC+8)
    assert {json.loads(e.data)["key"] for e in audited} == {
        f"certificate:{soon.id}:30:{soon.expires_on.isoformat()}",
        f"certificate:{korean.id}:7:{korean.expires_on.isoformat()}",
    }

    sent = len(outbox)
    assert tick(now + timedelta(minutes=1)).performed == []  # not twice on two ticks
    assert len(outbox) == sent
    later = tick(now + timedelta(days=14))  # 6 days left: the 7-day threshold, once
    assert later.performed == [("certificate_reminder", soon.id)]
    assert tick(now + timedelta(days=14, minutes=1)).performed == []
    assert len(outbox) == sent + 2

    # Renewed (its date moved on): no more reminders for it.
    soon.expires_on = today + timedelta(days=400)
    db.session.commit()
    assert tick(now + timedelta(days=19)).performed == []


def test_windows_closed_long_before_a_first_tick_are_recorded_without_mail(
    app, make_user, make_tender, outbox
):
    stale, fresh = make_tender(), make_tender()
    staff = make_user(Role.STAFF, centre=stale.centre)
    make_user(Role.STAFF, centre=fresh.centre)
    stale_deadline = utcnow() - timedelta(days=3)
    stale.enquiry_deadline = stale_deadline
    fresh.enquiry_deadline = utcnow() - timedelta(hours=2)
    db.session.commit()

    report = tick()
    assert report.performed == [("enquiry_window", fresh.id)]
    assert staff.email not in {m.to[0] for m in outbox.messages()}
    assert len(outbox) > 0  # the recent window is told as usual
    assert count(ClockStep, ClockStep.tender_id == stale.id) == 1  # recorded as done
    skipped = events("clock.step", stale.id)
    assert skipped == [
        {
            "step": "enquiry_window",
            "due_at": stale_deadline.isoformat(),
            "ran_at": skipped[0]["ran_at"],
            "key": str(stale.id),
            "skipped": "caught_up",
        }
    ]
    sent = len(outbox)
    assert tick().performed == [] and len(outbox) == sent
    assert len(events("clock.step", stale.id)) == 1


def test_two_ticks_at_once_send_a_certificate_reminder_once(shared_app):
    from app.accounts import security
    from app.accounts.models import User
    from app.centres.models import TradingCentre
    from app.clock.models import ClockReminder
    from app.companies.models import Company, CompanyCertificate, CompanyStatus

    with shared_app.app_context():
        centre = TradingCentre(code="CERT", name="Centre cert", level="city")
        db.session.add(centre)
        db.session.flush()
        company = Company(
            name="Cert Co.",
            registration_number="91330100MA2CERT01X",
            contact_name="C",
            contact_phone="1",
            home_centre_id=centre.id,
            status=CompanyStatus.APPROVED,
        )
        db.session.add(company)
        db.session.flush()
        for n in range(2):
            db.session.add(
                User(
                    email=f"cert{n}@example.com",
                    full_name="Cert",
                    password_hash=security.hash_password("correct horse battery"),
                    role=Role.BIDDER,
                    company_id=company.id,
                )
            )
        db.session.add(
            CompanyCertificate(
                company_id=company.id,
                name="Licence",
                number="L-1",
                expires_on=(utcnow() + timedelta(days=3)).date(),
            )
        )
        db.session.commit()
        company_id = company.id
        db.session.remove()
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run():
        try:
            with shared_app.app_context():
                barrier.wait()
                reports.append(tick())
                db.session.remove()
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    sent = [step for report in reports for step in report.performed if step[0].startswith("cert")]
    assert len(sent) == 1 and [r.failed for r in reports] == [[], []]
    with shared_app.app_context():
        assert count(ClockReminder, ClockReminder.company_id == company_id) == 1
        users = select(User.id).where(User.company_id == company_id)
        assert count(Notification, Notification.user_id.in_(users)) == 2
        db.session.remove()


def test_a_certificate_added_on_the_profile_page_is_reminded_on_the_notifications_page(
    app, client, auth, make_user, outbox
):
    bidder = make_user()
    auth.login(bidder)
    expires = (utcnow() + timedelta(days=12)).date()
    added = client.post(
        "/bidder/profile/certificates",
        data={
            "name": "Road works licence",
            "number": "RW-7",
            "issued_by": "Provincial bureau",
            "expires_on": expires.isoformat(),
        },
    )
    assert added.status_code == 302
    tick()
    page = client.get("/bidder/notifications").get_data(as_text=True)
    assert "Road works licence" in page and expires.isoformat() in page
    assert [m.to[0] for m in outbox.messages()] == [bidder.email]
    assert "/bidder/profile" in outbox.messages()[0].body


# --- sealing within a minute of the deadline -------------------------------------------------


def test_a_healthy_clock_seals_within_a_minute_of_the_deadline(app, tender, bidder):
    """The grace, plus one tick interval, fits inside the minute the issue allows."""
    grace = app.config["SEALING_GRACE_SECONDS"]
    assert grace + app.config["CLOCK_SECONDS"] < app.config["CLOCK_SEALING_LATE_SECONDS"] <= 60
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(minutes=5)
    deadline_at(tender, deadline)
    tick(deadline + timedelta(seconds=1))
    # Ticks every CLOCK_SECONDS: the first one after the grace seals.
    sealed_at = deadline + timedelta(seconds=grace + app.config["CLOCK_SECONDS"] - 1)
    assert tick(sealed_at).performed == [("seal", tender.id)]
    tick(deadline + timedelta(minutes=5))
    assert count(ClockAlert, ClockAlert.kind == "sealing_late") == 0


def test_no_sealing_record_a_minute_after_the_deadline_is_an_alert(
    app, tender, bidder, tmp_path, monkeypatch
):
    """Past the grace the seal is tried (and here fails); the alert comes only once the
    minute after the deadline is over, and is resolved by the record that follows."""
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(minutes=5)
    deadline_at(tender, deadline)
    broken = tmp_path / "not-a-directory"
    broken.write_text("")
    blob_dir = app.config["BLOB_DIR"]
    monkeypatch.setitem(app.config, "BLOB_DIR", str(broken))

    report = tick(deadline + timedelta(seconds=59))
    assert report.failed == [("seal", tender.id)]
    assert ("sealing_late", tender.id) not in report.raised
    report = tick(deadline + timedelta(seconds=61))
    assert ("sealing_late", tender.id) in report.raised
    alert = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "sealing_late"))
    assert alert.due_at == deadline + timedelta(seconds=60) and alert.resolved_at is None

    monkeypatch.setitem(app.config, "BLOB_DIR", blob_dir)
    report = tick(deadline + timedelta(seconds=75))
    assert ("seal", tender.id) in report.performed
    assert ("sealing_late", tender.id) in report.resolved
    assert sealing_records(tender) == 1
    assert count(ClockAlert, ClockAlert.kind == "sealing_late") == 1


def test_a_record_sealed_later_than_a_minute_after_the_deadline_stays_on_record(
    app, tender, bidder
):
    submit(tender, bidder, seal_for(tender, bidder, "900.00"))
    deadline = utcnow() + timedelta(minutes=5)
    deadline_at(tender, deadline)
    tick(deadline + timedelta(seconds=1))
    # The clock was down until 90 s after the deadline (inside nothing but past the minute).
    report = tick(deadline + timedelta(seconds=90))
    assert ("seal", tender.id) in report.performed
    alert = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "sealing_late"))
    assert alert.due_at == deadline + timedelta(seconds=60)
    assert alert.resolved_at == deadline + timedelta(seconds=90)


# --- the evaluation period -----------------------------------------------------------------


def test_an_evaluation_past_its_period_is_one_alert_resolved_when_it_is_finalised(
    app, make_tender, make_user
):
    from app.evaluations import operations as evaluation_ops
    from app.evaluations.queries import evaluation_of
    from tests.factories.scoring import fill_sheet, lock, scoring_tender

    with app.test_request_context():
        world = scoring_tender(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    tender = world.tender
    assert tender.status == TenderStatus.EVALUATING
    started = evaluation_of(tender).started_at
    period = timedelta(days=tender.evaluation_days)

    assert ("evaluation_overdue", tender.id) not in tick(
        started + period - timedelta(minutes=1)
    ).raised
    assert count(ClockAlert, ClockAlert.kind == "evaluation_overdue") == 0
    report = tick(started + period + timedelta(minutes=1))
    assert ("evaluation_overdue", tender.id) in report.raised
    alert = db.session.scalar(select(ClockAlert).where(ClockAlert.kind == "evaluation_overdue"))
    assert alert.due_at == started + period and alert.centre_id == tender.centre_id
    tick(started + period + timedelta(hours=5))  # raised once
    assert count(ClockAlert, ClockAlert.kind == "evaluation_overdue") == 1
    assert (
        len(
            [
                e
                for e in events("clock.alert_raised", tender.id)
                if e["kind"] == "evaluation_overdue"
            ]
        )
        == 1
    )
    assert db.session.get(ClockAlert, alert.id).resolved_at is None

    # Unblinding alone is not the end of the evaluation: still overdue.
    with app.test_request_context():
        for expert in world.experts:
            fill_sheet(expert, tender)
            lock(expert, tender)
        evaluation_ops.unblind(world.chair, tender)
        db.session.commit()
    assert tick(started + period + timedelta(hours=6)).resolved == []

    with app.test_request_context():
        evaluation_ops.finalise(world.chair, reload(tender))
        db.session.commit()
    report = tick(started + period + timedelta(hours=7))
    assert ("evaluation_overdue", tender.id) in report.resolved
    db.session.expire_all()
    assert db.session.get(ClockAlert, alert.id).resolved_at is not None
    assert tick(started + period + timedelta(days=30)).raised == []


# --- an envelope still being accepted when the sealing record is made -------------------------


class _SteppingOffset:
    """The server clock of one request, moving on past the grace once `late` is set, while
    the request waits for a row lock (tests control time; nothing sleeps for it)."""

    def __init__(self, before: timedelta, after: timedelta):
        self.before, self.after = before, after
        self.late = threading.Event()

    def __radd__(self, now):
        return now + (self.after if self.late.is_set() else self.before)


def test_an_envelope_accepted_while_the_record_is_made_is_refused_not_left_out(shared_app):
    """Checked in time, it waits for its registration row, which the sealing record holds;
    when it gets it the grace is over: refused with the server time. No bid is ever
    accepted that the record leaves out."""
    from datetime import UTC, datetime

    from app.bids import operations as bid_ops
    from app.bids.models import Bid
    from app.core.errors import OperationError
    from app.core.types import CLOCK_OFFSET
    from tests import factories

    with shared_app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks: PostgreSQL (SQLite serialises the whole database)")
    with shared_app.app_context(), shared_app.test_request_context():
        make_centre = factories.make_centre.__wrapped__(shared_app)
        make_company = factories.make_company.__wrapped__(shared_app, make_centre)
        make_user = factories.make_user.__wrapped__(shared_app, make_centre, make_company)
        make_tender = factories.make_tender.__wrapped__(shared_app, make_centre, make_user)
        tender = make_tender()
        bidder = registered_bidder(make_user, tender)
        body = seal_for(tender, bidder, "900.00")
        deadline = utcnow() + timedelta(minutes=5)
        deadline_at(tender, deadline)
        tender_id, bidder_id = tender.id, bidder.id
        db.session.remove()
    grace = timedelta(seconds=shared_app.config["SEALING_GRACE_SECONDS"])
    real = datetime.now(UTC)
    clock = _SteppingOffset(
        deadline - timedelta(seconds=1) - real, deadline + grace + timedelta(seconds=2) - real
    )
    sealed, errors = threading.Event(), []

    def seal():
        token = CLOCK_OFFSET.set(deadline + grace + timedelta(seconds=1) - datetime.now(UTC))
        try:
            with shared_app.app_context(), shared_app.test_request_context():
                bid_ops.seal_bids(db.session.get(Tender, tender_id))
                sealed.set()
                # Hold the record's transaction until the acceptance waits for its row.
                waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                with db.engine.connect() as probe:
                    for _ in range(400):
                        if probe.exec_driver_sql(waiting).scalar():
                            break
                        threading.Event().wait(0.025)
                clock.late.set()
                db.session.commit()
                db.session.remove()
        except Exception as error:
            errors.append(error)
            sealed.set()
        finally:
            CLOCK_OFFSET.reset(token)

    thread = threading.Thread(target=seal)
    thread.start()
    assert sealed.wait(60) and errors == []
    token = CLOCK_OFFSET.set(clock)
    try:
        with shared_app.app_context(), shared_app.test_request_context():
            from app.accounts.models import User

            with pytest.raises(OperationError) as refused:
                submit(db.session.get(Tender, tender_id), db.session.get(User, bidder_id), body)
            db.session.rollback()
            db.session.remove()
    finally:
        CLOCK_OFFSET.reset(token)
        clock.late.set()
        thread.join(timeout=60)
    assert errors == []
    assert refused.value.code == "deadline_passed"
    with shared_app.app_context():
        assert count(Bid, Bid.tender_id == tender_id) == 0
        record = events("tender.sealed", tender_id)
        assert len(record) == 1 and record[0]["size"] == 0
        db.session.remove()
