"""Drill: Redis stopped. A Redis server of the drill's own (a free port, no persistence,
its folder under the test's tmp_path) is frozen with SIGSTOP, the way a hung server or a
network partition looks to clients (connections time out; what was queued stays queued),
then resumed.

While it is stopped: bids are accepted with receipts, `/healthz`, the pages and the live
opening stream report degraded mode, and work that is enqueued runs inline instead. When it
returns, the jobs queued before the outage (an opening, an evaluation record, a clock tick)
run on a worker and each piece of work is done exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select

from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.clock.jobs import tick_job
from app.clock.service import tick
from app.core.types import utcnow
from app.extensions import db, get_queue, redis_client
from app.opening import jobs as opening_jobs
from app.opening import operations as opening_ops
from app.opening.models import OpeningLine
from app.records import operations as record_ops
from app.records.models import EvaluationRecord, RecordStatus
from app.tenders.models import Tender, TenderStatus
from tests.conftest import run_queued_jobs
from tests.drills.server import Gunicorn, bids_of, free_port, wait_for
from tests.factories import CUSTODIAN_PASSPHRASE, rebuild_tender_key
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, start
from tests.factories.records import build_finalised

pytestmark = [pytest.mark.drills, pytest.mark.postgres]


class RedisServer:
    def __init__(self, directory):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.resume()
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("fault drills run on PostgreSQL only")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def drill_settings(redis_server):
    return {"REDIS_URL": redis_server.url}


def count_events(action: str, object_id) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.object_id == str(object_id))
    )


def opening_ready(make_tender, make_user) -> Tender:
    """A tender with three bids, past its deadline, every share unlocked; not opened."""
    tender = make_tender()
    public = rebuild_tender_key(tender).public_key()
    for n in range(3):
        bidder = registered_bidder(make_user, tender)
        submit(tender, bidder, lib_seal(public, tid(tender), uscc(bidder), f"{200 + n}.00"))
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        opening_ops.unlock_share(custodian, tender, CUSTODIAN_PASSPHRASE)
    db.session.commit()
    return tender


def test_redis_stopped_bids_accepted_degraded_mode_and_queued_work_runs_once(
    app, redis_server, make_tender, make_user, make_company, tmp_path
):
    assert app.config["REDIS_URL"] == redis_server.url
    queue = get_queue()
    assert queue.is_async
    queue.empty()

    # Before the outage: an opening, an evaluation record and a clock tick are queued (no
    # worker is running); a tender's deadline has passed (the tick's work: close, seal).
    opening = opening_ready(make_tender, make_user)
    opening_jobs.enqueue_opening(opening.id)
    finalised = build_finalised(make_tender, make_user, make_company)
    record = record_ops.request_record(finalised.staff, finalised.tender)
    db.session.commit()
    due = make_tender()
    due.submission_deadline = utcnow() - timedelta(minutes=10)
    due.opening_at = utcnow() + timedelta(hours=1)
    db.session.commit()
    queue.enqueue(tick_job)
    assert queue.count == 3

    open_tender = make_tender()
    bidder = registered_bidder(make_user, open_tender)
    headers = {**token_for(bidder), "Content-Type": "application/octet-stream"}
    envelope = lib_seal(
        rebuild_tender_key(open_tender).public_key(), tid(open_tender), uscc(bidder)
    )
    server = Gunicorn(app, tmp_path / "gunicorn.log").start()
    try:
        redis_server.freeze()
        try:
            # A bid is accepted with its receipt.
            status, body = server.json(
                "POST", f"/api/v1/tenders/{open_tender.id}/bids", envelope, headers
            )
            assert status == 201, body
            assert body["receipt"]["receipt"]["size"] == len(envelope)
            assert len(bids_of(open_tender)) == 1
            # Health, pages and the live opening stream say degraded mode.
            assert server.json("GET", "/healthz") == (200, {"database": "ok", "redis": "degraded"})
            status, page, _ = server.request("GET", "/")
            assert status == 200 and b"Live updates and queues are temporarily unavailable" in page
            status, stream, _ = server.request("GET", f"/opening/tenders/{opening.id}/events")
            assert status == 200 and b"event: unavailable" in stream

            # Work enqueued now runs inline: the clock (`flask clock`) keeps ticking, and the
            # opening is retried by its staff.
            report = tick()
            assert report.failed == [], report
            opening_jobs.enqueue_opening(opening.id)
        finally:
            redis_server.resume()

        db.session.expire_all()
        assert db.session.get(Tender, opening.id).status == TenderStatus.OPENED
        assert db.session.get(Tender, due.id).status == TenderStatus.CLOSED
        # After an outage Redis is retried within seconds, by the server and here.
        wait_for(
            lambda: server.json("GET", "/healthz") == (200, {"database": "ok", "redis": "ok"}),
            "the server sees Redis again",
        )
        wait_for(redis_client.available, "this process sees Redis again")

        # Redis is back: a worker runs what was queued before the outage.
        assert Queue(queue.name, connection=queue.connection).count == 3
        run_queued_jobs()
        assert queue.count == 0
        assert queue.failed_job_registry.count == 0
    finally:
        server.stop()

    db.session.expire_all()
    assert count_events("tender.opened", opening.id) == 1
    lines = select(func.count()).select_from(OpeningLine).where(OpeningLine.tender_id == opening.id)
    assert db.session.scalar(lines) == 3
    assert count_events("tender.closed", due.id) == 1
    assert count_events("tender.sealed", due.id) == 1
    records = db.session.scalars(
        select(EvaluationRecord).where(EvaluationRecord.tender_id == finalised.tender.id)
    ).all()
    assert [(r.id, r.status) for r in records] == [(record.id, RecordStatus.SIGNED)]
    assert count_events("bid.received", bids_of(open_tender)[0].id) == 1
    assert verify_chain() is None
