"""What people do with the clock's alerts: read them (their centre's; supervisors all) and
ask for a failing step to be retried now rather than at the next tick."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import User
from app.audit import append_event
from app.clock.jobs import tick_job
from app.clock.models import ClockAlert
from app.core.errors import Conflict, OperationError
from app.extensions import db
from app.permissions import Permission, can, require
from app.tasks import enqueue_after_commit


def visible_alerts(actor: User, include_resolved: bool = False) -> list[ClockAlert]:
    """The actor's centre's alerts (every centre's for supervisors and administrators),
    open first, newest first."""
    if can(actor, Permission.VIEW_ALL_CENTRES):
        query = select(ClockAlert)
    else:
        require(actor, Permission.MANAGE_TENDERS, actor.centre_id)
        query = select(ClockAlert).where(ClockAlert.centre_id == actor.centre_id)
    if not include_resolved:
        query = query.where(ClockAlert.resolved_at.is_(None))
    query = query.order_by(
        ClockAlert.resolved_at.is_not(None), ClockAlert.raised_at.desc(), ClockAlert.id.desc()
    )
    return list(db.session.scalars(query.limit(500)))


def retry_alert(actor: User, alert_id: int) -> ClockAlert:
    """Queue a tick now for a failed step (the next periodic tick would retry it anyway)."""
    alert = db.session.get(ClockAlert, alert_id)
    if alert is None:
        raise OperationError(_l("There is no such alert."), code="not_found", status=404)
    require(actor, Permission.MANAGE_TENDERS, alert.centre_id)
    if alert.resolved_at is not None or not alert.kind.startswith("failed_"):
        raise Conflict(_l("Only an open alert of a failed step can be retried."), code="not_failed")
    append_event(
        "clock.retry_requested",
        actor=actor,
        object_type="tender",
        object_id=alert.tender_id,
        centre_id=alert.centre_id,
        data={"kind": alert.kind, "alert": alert.id},
    )
    enqueue_after_commit(tick_job)
    return alert
