"""The opening job. Jobs take ids, run in an app context and commit their own work.

Idempotent: the tender row is locked and its status checked, the lines have a unique
(tender, bid) constraint, and everything (lines, record, status) is written in one
transaction at the end, so a worker killed mid-opening leaves nothing half-written and a
rerun completes the opening exactly once."""

from __future__ import annotations

import logging

from app.bids.jobs import seal_tender
from app.core.errors import OperationError
from app.extensions import db
from app.opening import operations
from app.tasks import enqueue, in_app_context

log = logging.getLogger(__name__)


@in_app_context
def open_tender_bids(tender_id: int) -> str:
    """RQ job: make sure the sealing record exists, then open the tender's envelopes."""
    try:
        seal_tender(tender_id)  # idempotent; commits
    except OperationError:
        db.session.rollback()
        raise
    try:
        outcome = operations.open_bids(tender_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("opening of tender %s failed; it can be rerun", tender_id)
        raise
    log.info("opening of tender %s: %s", tender_id, outcome)
    return outcome


def enqueue_opening(tender_id: int) -> None:
    """Queue the opening; called after the commit that put the k-th share in."""
    enqueue(open_tender_bids, tender_id)
