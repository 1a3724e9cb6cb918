"""The opening ceremony as a test drives it: the deadline moved into the past, the
ceremony started by the tender's staff, custodians unlocking their shares until the
opening job runs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.accounts.models import User
from app.bids.jobs import seal_tender
from app.core.types import utcnow
from app.custody.models import KeyShare
from app.extensions import db
from app.opening import jobs
from app.opening import operations as ops
from tests.conftest import run_queued_jobs
from tests.factories import CUSTODIAN_PASSPHRASE


def past_opening(tender) -> None:
    """Move the deadline and the opening time into the past (bids went in before)."""
    now = utcnow()
    tender.submission_deadline = now - timedelta(hours=2)
    tender.opening_at = now - timedelta(hours=1)
    db.session.commit()


def custodians(tender) -> list[User]:
    ids = db.session.scalars(
        select(KeyShare.custodian_id).where(KeyShare.tender_id == tender.id).order_by(KeyShare.id)
    )
    return [db.session.get(User, i) for i in ids]


def staff_of(tender) -> User:
    return db.session.get(User, tender.created_by_id)


def start(tender):
    session = ops.start_opening(staff_of(tender), tender)
    db.session.commit()
    seal_tender(tender.id)
    return session


def unlock(tender, custodian, passphrase=CUSTODIAN_PASSPHRASE) -> bool:
    ready = ops.unlock_share(custodian, tender, passphrase)
    db.session.commit()
    if ready:
        jobs.enqueue_opening(tender.id)
        run_queued_jobs()
    return ready


def open_for_real(tender):
    """Past the opening time, the ceremony started and every custodian's share unlocked:
    the tender opened as the app opens it. Returns the tender read again."""
    past_opening(tender)
    start(tender)
    for custodian in custodians(tender):
        unlock(tender, custodian)
    # The inline opening job committed in its own session inside this session's savepoint
    # (tests run in one outer transaction): close that savepoint so later rollbacks keep it.
    db.session.commit()
    db.session.expire_all()
    return db.session.get(type(tender), tender.id)
