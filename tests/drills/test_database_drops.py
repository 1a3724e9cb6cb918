"""Drills: the PostgreSQL connection dropped (pg_terminate_backend) in the middle of an
envelope upload and in the middle of the opening job."""

from __future__ import annotations

import os
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.bids.models import Bid
from app.extensions import db
from app.opening import operations as opening_ops
from app.opening.jobs import open_tender_bids
from app.opening.models import OpeningLine
from app.tenders.models import Tender, TenderStatus
from tests.drills.server import Gunicorn, bids_of, read_response, temp_files, wait_for
from tests.factories import CUSTODIAN_PASSPHRASE, rebuild_tender_key
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, start

pytestmark = [pytest.mark.drills, pytest.mark.postgres]


@pytest.fixture
def admin_engine(app):
    """A connection of the drill's own, outside the app's pool, to drop the app's."""
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def test_connection_dropped_mid_upload_is_not_held_by_it_and_the_upload_is_accepted(
    app, make_tender, make_user, tmp_path, admin_engine
):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = {**token_for(bidder), "Content-Type": "application/octet-stream"}
    envelope = lib_seal(
        rebuild_tender_key(tender).public_key(),
        tid(tender),
        uscc(bidder),
        technical=os.urandom(3_000_000),
    )
    server = Gunicorn(app, tmp_path / "gunicorn.log").start()
    try:
        path = f"/api/v1/tenders/{tender.id}/bids"
        sock = server.partial_request("POST", path, headers, envelope[:1_500_000], len(envelope))
        try:
            wait_for(
                lambda: any(part.stat().st_size > 0 for part in temp_files(app)),
                "the worker, past its first queries, streams the envelope",
            )
            with admin_engine.connect() as connection:
                dropped = connection.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": server.application_name},
                ).scalar()
            assert dropped >= 1
            sock.sendall(envelope[1_500_000:])
            status, body = read_response(sock)
        finally:
            sock.close()
        # The upload held no connection while its bytes arrived (it went back to the pool,
        # where it was dropped): the pool's pre-ping replaces it and the bid is accepted,
        # once, with its audit event. (Before, the dropped connection was the upload's own:
        # 503 database_unavailable and a retry.)
        assert status == 201, body
        bids = bids_of(tender)
        assert len(bids) == 1
        db.session.expire_all()
        received = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "bid.received", AuditEvent.object_id == str(bids[0].id)
            )
        ).all()
        assert len(received) == 1
        assert verify_chain() is None
    finally:
        server.stop()


def test_connection_dropped_during_the_opening_job_then_the_rerun_opens_once(
    app, make_tender, make_user, admin_engine
):
    tender = make_tender()
    private_key = rebuild_tender_key(tender)
    bidders = [registered_bidder(make_user, tender) for _ in range(3)]
    for n, bidder in enumerate(bidders):
        submit(
            tender,
            bidder,
            lib_seal(private_key.public_key(), tid(tender), uscc(bidder), f"{100 + n}.00"),
        )
    past_opening(tender)
    start(tender)
    ready = [opening_ops.unlock_share(c, tender, CUSTODIAN_PASSPHRASE) for c in custodians(tender)]
    db.session.commit()
    assert ready[-1]

    # The drill holds the tender row: the job blocks on its lock; its backend is dropped.
    errors: list[BaseException] = []

    def job() -> None:
        with app.app_context():
            try:
                open_tender_bids(tender.id)
            except BaseException as error:
                errors.append(error)

    with admin_engine.connect() as holder:
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["options"]
        holder.exec_driver_sql(f"SET search_path TO {options.split('=', 1)[1]}")
        holder.execute(
            sa.text("SELECT id FROM tender WHERE id = :id FOR UPDATE"), {"id": tender.id}
        )
        holder_pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        thread = threading.Thread(target=job)
        thread.start()
        with admin_engine.connect() as killer:
            blocked = "SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
            wait_for(
                lambda: killer.execute(sa.text(blocked), {"holder": holder_pid}).first(),
                "the opening job waits for the tender row",
            )
            terminate = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE :holder = ANY(pg_blocking_pids(pid))"
            )
            killer.execute(sa.text(terminate), {"holder": holder_pid})
        thread.join(30)
        holder.rollback()
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], sa.exc.OperationalError), errors
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).status == TenderStatus.CLOSED
    lines = select(func.count()).select_from(OpeningLine).where(OpeningLine.tender_id == tender.id)
    assert db.session.scalar(lines) == 0  # nothing half-written

    # The job is resumed (the queue retries it, or the clock's alert): it opens once.
    assert open_tender_bids(tender.id) == "opened"
    assert open_tender_bids(tender.id) == "done"
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).status == TenderStatus.OPENED
    opened_lines = db.session.scalar(lines)
    submitted = db.session.scalar(
        select(func.count()).select_from(Bid).where(Bid.tender_id == tender.id)
    )
    assert opened_lines == submitted == 3
    opened_events = db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "tender.opened", AuditEvent.object_id == str(tender.id))
    )
    assert opened_events == 1
    assert verify_chain() is None
