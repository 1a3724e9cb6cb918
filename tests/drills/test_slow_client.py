"""Drill: a client sending its envelope one byte a second does not hold a worker forever.
gunicorn's `--timeout` (30 s by default; 3 s here) ends a sync worker that has been busy
with one request for that long; the master starts a new one and nothing was stored. Large
envelopes on slow links go through the resumable upload, whose 1 MiB chunks are each a
request of their own (README, Production stack)."""

from __future__ import annotations

import time

import pytest

from tests.drills.server import Gunicorn, answers, bids_of, read_response, wait_for
from tests.factories import rebuild_tender_key
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, registered_bidder, tid, uscc

pytestmark = [pytest.mark.drills, pytest.mark.postgres]


def test_a_one_byte_a_second_client_is_cut_off_at_the_worker_timeout(
    app, make_tender, make_user, tmp_path
):
    tender = make_tender()
    bidder = registered_bidder(make_user, tender)
    headers = {**token_for(bidder), "Content-Type": "application/octet-stream"}
    envelope = lib_seal(rebuild_tender_key(tender).public_key(), tid(tender), uscc(bidder))
    server = Gunicorn(
        app, tmp_path / "gunicorn.log", settings=["--workers", "1", "--timeout", "3", "--preload"]
    ).start()
    try:
        (worker,) = server.workers()
        sock = server.partial_request(
            "POST", f"/api/v1/tenders/{tender.id}/bids", headers, envelope[:1], len(envelope)
        )
        try:
            sent = 1
            # One byte a second until the server hangs up (it must, long before the end).
            while sent < len(envelope):
                try:
                    sock.sendall(envelope[sent : sent + 1])
                except OSError:
                    break
                sent += 1
                if not worker.is_running():
                    break
                time.sleep(1)
            assert sent < len(envelope)
            assert read_response(sock)[0] in (0, 500)
        finally:
            sock.close()
        assert not worker.is_running()  # the master ended it...
        wait_for(lambda: answers(server), "a new worker answers")  # ...and replaced it
        assert bids_of(tender) == []
    finally:
        server.stop()
