"""Background jobs (RQ). Jobs take plain values, run in an app context, and are enqueued
only after the transaction that motivates them commits.

The queue is named by the `RQ_QUEUE` setting (default `fairbid`); `rq worker fairbid --url
$REDIS_URL` runs them in production.
With the embedded defaults (no REDIS_URL) the queue is synchronous and jobs run inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

import redis
from flask import Flask, has_app_context
from flask_mailman import EmailMessage

from app.core.transaction import after_commit, own_session
from app.extensions import db, get_queue

log = logging.getLogger(__name__)

_worker_app: Flask | None = None


def in_app_context(job: Callable) -> Callable:
    """Give a job an app context: the caller's (inline, tests) or a worker's own app."""

    @wraps(job)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            # Inline (embedded mode, tests, Redis down): like a worker, the job gets a
            # session and a transaction of its own, never the caller's.
            caller = db.session()
            try:
                with own_session():
                    return job(*args, **kwargs)
            finally:
                # What the caller loaded before may have changed under it.
                if not (caller.new or caller.dirty or caller.deleted):
                    caller.expire_all()
        global _worker_app
        if _worker_app is None:
            from app import create_app

            _worker_app = create_app()
        with _worker_app.app_context():
            try:
                return job(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper


def enqueue(job: Callable, *args: Any, **kwargs: Any) -> None:
    """Queue a job now (call it only once its data is committed)."""
    try:
        get_queue().enqueue(job, *args, **kwargs)
    except redis.RedisError:
        # Degraded mode: Redis is down, so do the work now rather than lose it.
        log.warning("queue unavailable; running %s inline", job.__name__)
        job(*args, **kwargs)


def enqueue_after_commit(job: Callable, *args: Any, **kwargs: Any) -> None:
    """Queue a job once the current transaction commits; dropped on rollback."""

    def enqueue_now() -> None:
        enqueue(job, *args, **kwargs)

    enqueue_now.__name__ = f"enqueue_{job.__name__}"
    after_commit(db.session(), enqueue_now)


@in_app_context
def send_email(to: str, subject: str, body: str) -> None:
    EmailMessage(subject=subject, body=body, to=[to]).send()
    log.info("mail sent to %s: %s", to.split("@")[-1], subject)
