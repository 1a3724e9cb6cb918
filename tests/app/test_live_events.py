"""The live opening stream (app/events.py, /opening/tenders/<id>/events): every state change
of a whole ceremony arrives in order, a stream on a finished ceremony ends at once, the
per-address cap answers 429, and a Redis outage ends the stream with `unavailable`.

Runs on the in-process Redis stand-in, or on a real Redis when REDIS_URL is set (conftest
gives each worker a database of its own: PYTEST_XDIST_WORKER=gwN uses database N + 1)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis as redis_lib

from app.extensions import db, redis_client
from app.opening import operations as ops
from app.tenders.models import Tender
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc
from tests.factories.opening import custodians, past_opening, start, unlock


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


@pytest.fixture
def tender(make_tender):
    return make_tender()  # 2 custodians, k = 2


def seal_for(tender, bidder, price) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = X25519PublicKey.from_public_bytes(public_key(tender))
    return lib_seal(key, tid(tender), uscc(bidder), price=price)


def parse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def text_of(chunk) -> str:
    return chunk.decode() if isinstance(chunk, bytes) else chunk


class Reader(threading.Thread):
    """Reads a streamed response to its end in the background."""

    def __init__(self, chunks):
        super().__init__(daemon=True)
        self.chunks = chunks
        self.text = ""

    def run(self):
        for chunk in self.chunks:
            self.text += text_of(chunk)


def test_the_stream_carries_the_whole_ceremony_in_order(app, client, tender, make_user):
    bidders = [registered_bidder(make_user, tender) for _ in range(3)]
    for bidder, price in zip(bidders, ["10.00", "20.00", "30.00"], strict=True):
        submit(tender, bidder, seal_for(tender, bidder, price))
    past_opening(tender)
    response = client.get(f"/opening/tenders/{tender.id}/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    first = parse(text_of(next(chunks)))  # subscribed before this was sent
    assert first[0][0] == "state"
    assert first[0][1]["ceremony"] is None and first[0][1]["total"] == 3
    reader = Reader(chunks)
    reader.start()

    start(tender)
    first_custodian, second_custodian = custodians(tender)
    assert unlock(tender, first_custodian) is False
    assert unlock(tender, second_custodian) is True  # the opening job runs
    reader.join(timeout=120)
    assert not reader.is_alive(), "the stream did not end after `opened`"
    response.close()

    events = [(name, data) for name, data in parse(reader.text)]
    assert [name for name, _ in events] == [
        "started",
        "unlocked",
        "unlocked",
        "progress",
        "progress",
        "progress",
        "line",
        "line",
        "line",
        "record",
        "opened",
    ]
    data = [payload for _, payload in events]
    assert data[0]["total"] == 3 and data[0]["threshold"] == 2
    assert (data[1]["unlocked"], data[1]["threshold"]) == (1, 2)
    assert (data[2]["unlocked"], data[2]["threshold"]) == (2, 2)
    assert [d["done"] for d in data[3:6]] == [1, 2, 3]
    lines = data[6:9]
    assert [line["price"] for line in lines] == ["10.00", "20.00", "30.00"]
    assert [line["status"] for line in lines] == ["opened"] * 3
    companies = {bidder.company.name for bidder in bidders}
    assert {line["company"] for line in lines} == companies
    record = ops.record_of(db.session.get(Tender, tender.id))
    assert data[9]["sha256"] == record.sha256
    assert (data[10]["done"], data[10]["total"]) == (3, 3)

    # A stream opened on the finished ceremony: the whole state (lines and record), then
    # the end: nothing to wait for, no reconnection needed.
    again = client.get(f"/opening/tenders/{tender.id}/events")
    (name, state), *rest = parse(again.get_data(as_text=True))
    assert name == "state" and rest == []
    assert state["ceremony"] == "completed" and state["done"] == 3
    assert [line["price"] for line in state["lines"]] == ["10.00", "20.00", "30.00"]
    assert state["record_sha256"] == record.sha256

    page = client.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-over="true"' in page


def test_a_stream_holds_no_database_transaction(client, tender):
    response = client.get(f"/opening/tenders/{tender.id}/events", buffered=False)
    assert response.status_code == 200
    assert not db.session().in_transaction()  # its connection went back to the pool
    response.close()


def test_a_page_before_the_end_listens(client, tender):
    page = client.get(f"/opening/tenders/{tender.id}").get_data(as_text=True)
    assert 'data-over="false"' in page and "The ceremony has not started." in page


def test_streams_per_address_are_capped(app, client, tender):
    app.config["EVENT_STREAMS_PER_ADDRESS"] = 2
    url = f"/opening/tenders/{tender.id}/events"
    try:
        held = [client.get(url, buffered=False) for _ in range(2)]
        assert [r.status_code for r in held] == [200, 200]
        refused = client.get(url, buffered=False)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"]
        assert "Too many live streams from your address" in refused.get_data(as_text=True)
        # Another address is counted on its own.
        other = client.get(url, buffered=False, environ_overrides={"REMOTE_ADDR": "192.0.2.7"})
        assert other.status_code == 200
        other.close()
        # A stream that ends gives its place back.
        held.pop().close()
        again = client.get(url, buffered=False)
        assert again.status_code == 200
        for response in [*held, again]:
            response.close()
    finally:
        app.config["EVENT_STREAMS_PER_ADDRESS"] = 20


def test_a_slot_left_by_a_dead_stream_frees_itself(app, client, tender):
    """A worker killed mid-stream never releases its slot: the slot's lease runs out."""
    app.config["EVENT_STREAMS_PER_ADDRESS"] = 1
    url = f"/opening/tenders/{tender.id}/events"
    key = "fairbid:streams:127.0.0.1"
    redis = redis_client.client
    try:
        redis.zadd(key, {"killed-worker": time.time() + 60})  # a lease still running
        assert client.get(url, buffered=False).status_code == 429
        redis.zadd(key, {"killed-worker": time.time() - 1})  # its lease has run out
        response = client.get(url, buffered=False)
        assert response.status_code == 200
        assert redis.zrange(key, 0, -1) != [b"killed-worker"]  # the stale slot is gone
        response.close()
        assert redis.zcard(key) == 0
    finally:
        app.config["EVENT_STREAMS_PER_ADDRESS"] = 20
        redis.delete(key)


def test_without_redis_the_stream_says_unavailable_and_ends(app, client, tender):
    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = redis_lib.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.5
    )
    try:
        response = client.get(f"/opening/tenders/{tender.id}/events")
    finally:
        app.extensions["fairbid_redis"] = original
    assert response.status_code == 200
    assert [name for name, _ in parse(response.get_data(as_text=True))] == [
        "state",
        "unavailable",
    ]
