"""The tick as an RQ job (`rq worker --with-scheduler` runs it when enqueued with
`enqueue_in`/`enqueue_at`); each run schedules the next when the queue has a scheduler."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app

from app.clock.service import tick
from app.extensions import get_queue
from app.tasks import in_app_context

log = logging.getLogger(__name__)


@in_app_context
def tick_job(reschedule: bool = False) -> dict:
    """RQ job: one tick; with `reschedule`, the next one FAIRBID_CLOCK_SECONDS later."""
    report = tick()
    if reschedule:
        seconds = int(current_app.config.get("CLOCK_SECONDS", 15))
        get_queue().enqueue_in(timedelta(seconds=seconds), tick_job, reschedule=True)
    return {
        "performed": report.performed,
        "failed": report.failed,
        "raised": report.raised,
        "resolved": report.resolved,
        "checkpoints": report.checkpoints,
    }
