"""RQ jobs computing red flags: after each opening (that tender) and nightly (history).

Jobs take ids, run in an app context, commit their own work and are idempotent: a flag is
keyed by (rule, subject), so a rerun updates the same rows and keeps their review."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core.types import utcnow
from app.extensions import db
from app.supervision import flags
from app.supervision.flag_models import FlagRun
from app.tasks import enqueue, enqueue_after_commit, in_app_context
from app.tenders.models import Tender

log = logging.getLogger(__name__)


@in_app_context
def screen_opened_tender(tender_id: int) -> int:
    """RQ job: the price and same-source flags of one opened tender."""
    try:
        raised = flags.screen_tender(tender_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("red flags of tender %s failed; the nightly run retries", tender_id)
        raise
    return raised


@in_app_context
def screen_history(run_id: int) -> int:
    """RQ job: screen the recently opened tenders again (comparable tenders changed) and
    compute the market signals of every centre."""
    run = db.session.get(FlagRun, run_id)
    if run is None or run.finished_at is not None:
        return 0
    raised = 0
    for tender_id in flags.recently_opened(utcnow()):
        raised += flags.screen_tender(tender_id)
    raised += flags.screen_market()
    run.finished_at = utcnow()
    run.raised = raised
    db.session.commit()
    return raised


def screen_on_opening(tender: Tender, **_: object) -> None:
    """Receiver of `app.opening.signals.tender_opened` (connected in the app factory): screen
    the tender once its opening is committed."""
    enqueue_after_commit(screen_opened_tender, tender.id)


def nightly(now: datetime) -> bool:
    """Called by each clock tick: from SUPERVISION_FLAGS_HOUR (UTC, default 2) start the day's
    run over history once (a `FlagRun` row per day; a concurrent tick finds it). Commits."""
    if not current_app.config.get("SUPERVISION_FLAGS_NIGHTLY", True):
        return False
    if now.hour < int(current_app.config.get("SUPERVISION_FLAGS_HOUR", 2)):
        return False
    day = now.date()
    if db.session.scalar(select(FlagRun.id).where(FlagRun.day == day)) is not None:
        return False
    run = FlagRun(day=day, started_at=now)
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another tick started it
        return False
    enqueue(screen_history, run.id)
    return True
