"""API: the clock's alerts (late or failed time-driven steps) and a retry of a failed step."""

from __future__ import annotations

from typing import Any

from flask import request

from app.api import auth, bp, roles_required
from app.api.roles import TENDER_MANAGERS, VIEWERS
from app.api.schemas import error_responses
from app.clock import operations
from app.clock.models import ClockAlert
from app.clock.service import alert_title
from app.core.boundary import transactional
from app.core.types import timestamp


def alert_data(alert: ClockAlert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "title": alert_title(alert.kind),
        "tender_id": alert.tender_id,
        "centre_id": alert.centre_id,
        "due_at": timestamp(alert.due_at),
        "raised_at": timestamp(alert.raised_at),
        "resolved_at": timestamp(alert.resolved_at) if alert.resolved_at else None,
        "attempts": alert.attempts,
        "detail": alert.detail,
    }


@bp.get("/clock/alerts")
@bp.auth_required(auth)
@roles_required(*VIEWERS)
@bp.doc(
    summary="The clock's alerts (staff: their centre; supervisors and administrators: all)",
    description="Late steps (`sealing_late`, `opening_not_started`, `evaluation_overdue`, "
    "`candidates_overdue`, `award_overdue`, `objection_unanswered`) and failed steps "
    "(`failed_<step>`, retried at every tick). `?all=1` includes resolved alerts.",
    responses=error_responses(403),
)
def clock_alerts() -> dict[str, Any]:
    include_resolved = request.args.get("all") == "1"
    alerts = operations.visible_alerts(auth.current_user, include_resolved)
    return {"alerts": [alert_data(alert) for alert in alerts]}


@bp.post("/clock/alerts/<int:alert_id>/retry")
@bp.auth_required(auth)
@roles_required(*TENDER_MANAGERS)
@bp.doc(
    summary="Retry a failed step now (staff of the centre)",
    description="Queues a tick; the periodic tick retries it anyway.",
    responses=error_responses(403, 404, 409),
)
@transactional
def retry_clock_alert(alert_id: int) -> tuple[dict[str, Any], int]:
    alert = operations.retry_alert(auth.current_user, alert_id)
    return {"alert": alert_data(alert)}, 202
