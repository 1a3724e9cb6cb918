"""Side effects wait for the commit: e-mail jobs and live events never announce what the
database does not have; a Redis outage runs the mail inline instead of losing it."""

from __future__ import annotations

import json
import time

import redis as redis_lib

from app.audit import append_event
from app.extensions import db, redis_client
from app.tasks import enqueue_after_commit, send_email


def test_audit_events_are_published_after_commit_only(app):
    pubsub = redis_client.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("fairbid:audit")
    append_event("test.rolled_back", data={"secret": "nothing"})
    db.session.rollback()
    append_event("test.committed", data={"secret": "not broadcast"})
    db.session.commit()
    # Pub/sub channels span Redis databases: other test workers' events may arrive too.
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "test.committed" not in seen:
        message = pubsub.get_message(timeout=0.5)
        if message:
            assert b"secret" not in message["data"]
            seen.append(json.loads(message["data"])["action"])
    pubsub.close()
    assert "test.committed" in seen
    assert "test.rolled_back" not in seen


def test_mail_job_is_dropped_on_rollback(app, outbox):
    enqueue_after_commit(send_email, "a@example.com", "Subject", "Body")
    db.session.rollback()
    assert len(outbox) == 0
    enqueue_after_commit(send_email, "a@example.com", "Subject", "Body")
    db.session.commit()
    assert len(outbox) == 1 and outbox[0].to == ["a@example.com"]


def test_mail_goes_out_inline_when_the_queue_is_down(app, outbox):
    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = redis_lib.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    real_url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # an asynchronous queue that is down
    try:
        enqueue_after_commit(send_email, "b@example.com", "Subject", "Body")
        db.session.commit()
    finally:
        app.extensions["fairbid_redis"] = original
        app.config["REDIS_URL"] = real_url
    assert [m.to for m in app.extensions["mailman"].outbox] == [["b@example.com"]]
