"""Supervision: the intervention in a tender (suspension under dual control), the live
dashboard, the audit explorer and the statistics. Only supervisors intervene; they change
tenders in no other way (every other area's expectations leave them out of changes)."""

from tests.app.expectations import PUBLIC, SUPERVISION

SUPERVISOR_ONLY = frozenset({"supervisor"})

EXPECTED = {
    "supervision.centre": SUPERVISION,
    "supervision.statistics_page": SUPERVISION,
    "supervision.statistics_csv": SUPERVISION,
    "api.supervision_statistics": SUPERVISION,
    "supervision.summary": SUPERVISION,
    "supervision.dashboard_csv": SUPERVISION,
    "supervision.events": SUPERVISION,
    "supervision.tender": SUPERVISION,
    "supervision.suspend": SUPERVISOR_ONLY,
    "supervision.request_resume": SUPERVISOR_ONLY,
    "supervision.withdraw_resume": SUPERVISOR_ONLY,
    "supervision.approve_resume": SUPERVISOR_ONLY,
    "api.tender_suspensions": PUBLIC,
    "api.supervision_dashboard": SUPERVISION,
    "api.search_audit": SUPERVISION,
    "api.suspend_tender": SUPERVISOR_ONLY,
    "api.request_resumption": SUPERVISOR_ONLY,
    "api.withdraw_resumption": SUPERVISOR_ONLY,
    "api.approve_resumption": SUPERVISOR_ONLY,
}
