"""Drills: a gunicorn worker SIGKILLed in the middle of an envelope upload, and the whole
server SIGKILLed right after a receipt was issued."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from sqlalchemy import func, select

from app.audit import verify_chain
from app.bids.models import Bid
from app.bids.operations import reconcile_audit
from app.extensions import db
from app.tenders.documents import blob_store
from tests.drills.server import (
    Gunicorn,
    answers,
    bids_of,
    blob_count,
    read_response,
    temp_files,
    wait_for,
)
from tests.factories import rebuild_tender_key
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, tid, uscc

pytestmark = [pytest.mark.drills, pytest.mark.postgres]


@pytest.fixture(scope="module")
def server(drill_app, tmp_path_factory):
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    server = Gunicorn(drill_app, log).start()
    yield server
    server.stop()


@pytest.fixture
def bidder_world(app, make_tender, make_user):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = token_for(bidder)
    # 3 MB of technical part: big enough to be cut in the middle.
    envelope = lib_seal(
        rebuild_tender_key(tender).public_key(),
        tid(tender),
        uscc(bidder),
        technical=os.urandom(3_000_000),
    )
    return tender, bidder, headers, envelope


def test_worker_killed_mid_upload_leaves_nothing_and_the_resumed_upload_completes(
    app, server, bidder_world
):
    tender, _bidder, headers, envelope = bidder_world
    blobs_before = blob_count()
    status, state = server.json(
        "POST", f"/api/v1/tenders/{tender.id}/uploads", {"size": len(envelope)}, headers
    )
    assert status == 201, state
    url = state["url"]
    first = 700_000
    status, state = server.json(
        "PUT",
        url,
        envelope[:first],
        {**headers, "Content-Range": f"bytes 0-{first - 1}/{len(envelope)}"},
    )
    assert (status, state["offset"]) == (200, first), state

    # The second chunk is cut: the worker is reading it when it is killed.
    (part,) = [path for path in temp_files(app) if path.name.startswith("upload-session-")]
    sock = server.partial_request(
        "PUT",
        url,
        {**headers, "Content-Range": f"bytes {first}-{len(envelope) - 1}/{len(envelope)}"},
        envelope[first : first + 1_500_000],
        len(envelope) - first,
    )
    try:
        wait_for(lambda: part.stat().st_size > first, "the worker writes the second chunk")
        server.kill_worker()
        assert read_response(sock) == (0, b"")  # no answer, so no receipt
    finally:
        sock.close()

    # Nothing half-stored is visible: no bid, no blob, the bidder's list is empty.
    assert bids_of(tender) == []
    assert blob_count() == blobs_before
    wait_for(lambda: answers(server), "the master's new worker answers")
    status, mine = server.json("GET", f"/api/v1/tenders/{tender.id}/bids/mine", None, headers)
    assert (status, mine) == (200, {"bids": []})

    # The bidder asks where to resume, and completes the upload from there.
    status, state = server.json("GET", url, None, headers)
    assert status == 200 and not state["complete"]
    offset = state["offset"]
    assert first <= offset < len(envelope)
    status, state = server.json(
        "PUT",
        url,
        envelope[offset:],
        {**headers, "Content-Range": f"bytes {offset}-{len(envelope) - 1}/{len(envelope)}"},
    )
    assert status == 200 and state["complete"], state
    receipt = state["receipt"]
    assert receipt["receipt"]["envelope_sha256"] == hashlib.sha256(envelope).hexdigest()
    (bid,) = bids_of(tender)
    assert bid.envelope_sha256 == receipt["receipt"]["envelope_sha256"]
    assert blob_store().path_for(bid.envelope_sha256).read_bytes() == envelope
    assert temp_files(app) == []


def test_worker_killed_mid_post_leaves_no_bid_and_a_new_post_is_accepted(app, server, bidder_world):
    tender, _bidder, headers, envelope = bidder_world
    blobs_before = blob_count()
    sock = server.partial_request(
        "POST",
        f"/api/v1/tenders/{tender.id}/bids",
        {**headers, "Content-Type": "application/octet-stream"},
        envelope[:1_500_000],
        len(envelope),
    )
    try:
        wait_for(
            lambda: any(path.stat().st_size > 0 for path in temp_files(app)),
            "the worker streams the envelope into the blob store",
        )
        server.kill_worker()
        assert read_response(sock) == (0, b"")
    finally:
        sock.close()
    assert bids_of(tender) == []
    assert blob_count() == blobs_before
    wait_for(lambda: answers(server), "the master's new worker answers")

    status, body = server.json(
        "POST",
        f"/api/v1/tenders/{tender.id}/bids",
        envelope,
        {**headers, "Content-Type": "application/octet-stream"},
    )
    assert status == 201, body
    assert len(bids_of(tender)) == 1


def test_server_killed_after_the_receipt_keeps_the_bid_byte_identical(app, server, bidder_world):
    tender, _bidder, headers, envelope = bidder_world
    status, body = server.json(
        "POST",
        f"/api/v1/tenders/{tender.id}/bids",
        envelope,
        {**headers, "Content-Type": "application/octet-stream"},
    )
    assert status == 201, body
    receipt = body["receipt"]
    server.kill_all()  # the very moment the receipt left: master and worker, no clean-up

    server.start()
    status, mine = server.json("GET", f"/api/v1/tenders/{tender.id}/bids/mine", None, headers)
    assert status == 200
    (listed,) = mine["bids"]
    assert listed["receipt"] == receipt
    status, kept, _ = server.request("GET", f"/api/v1/bids/{listed['id']}/receipt", b"", headers)
    assert status == 200 and json.loads(kept) == receipt
    stored = blob_store().path_for(receipt["receipt"]["envelope_sha256"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == receipt["receipt"]["envelope_sha256"]
    assert stored == envelope
    (bid,) = bids_of(tender)
    assert (bid.id, bid.size) == (receipt["receipt"]["sequence"], len(envelope))
    # A kill between the commit and the follow-up audit transaction is what
    # `flask bids reconcile-audit` repairs; either way the chain verifies after it.
    reconcile_audit()
    db.session.commit()
    assert verify_chain() is None
    assert (
        db.session.scalar(select(func.count()).select_from(Bid).where(Bid.tender_id == tender.id))
        == 1
    )
