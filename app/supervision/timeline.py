"""A tender's story from its audit events, in words: who (by name) did what (a translated
label), when. Before the opening nobody learns who bid: a bidder's event names no one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import String, cast, or_, select

from app.accounts.models import Role, User
from app.audit import AuditEvent
from app.bids.models import Bid
from app.core.labels import label
from app.extensions import db
from app.tenders.models import Tender, TenderStatus

# Until the bids are opened the identities of the bidders stay secret, even from supervisors.
SEALED_STATUSES = frozenset({TenderStatus.DRAFT, TenderStatus.PUBLISHED, TenderStatus.CLOSED})

ACTION_LABELS = {
    "tender.created": _l("Draft created"),
    "tender.updated": _l("Draft edited"),
    "tender.published": _l("Published"),
    "tender.key_ceremony": _l("Tender key made and shared among custodians"),
    "tender.addendum_published": _l("Addendum published"),
    "tender.attachment_added": _l("Attachment added"),
    "tender.enquiry_asked": _l("Enquiry asked"),
    "tender.enquiry_answered": _l("Enquiry answered"),
    "tender.registered": _l("A company registered"),
    "tender.bond_recorded": _l("Bid bond recorded"),
    "tender.closed": _l("Bid deadline reached: bidding closed"),
    "tender.sealed": _l("Sealing record made"),
    "tender.opened": _l("Bids opened"),
    "tender.failed": _l("Tender failed"),
    "tender.cancelled": _l("Tender cancelled"),
    "tender.retendered": _l("Tendered again"),
    "tender.retender_of": _l("Re-tender of a failed tender"),
    "tender.demo_deadline_moved": _l("Deadline moved (demonstration)"),
    "tender.suspended": _l("Suspended by the supervision authority"),
    "tender.resume_requested": _l("Resumption requested"),
    "tender.resume_request_withdrawn": _l("Resumption request withdrawn"),
    "tender.resumed": _l("Resumed after a second supervisor's approval"),
    "bid.received": _l("An envelope arrived"),
    "bid.withdrawn": _l("An envelope was withdrawn"),
    "opening.started": _l("Opening started"),
    "opening.share_unlocked": _l("A custodian unlocked a key share"),
    "opening.shares_reset": _l("Key shares reset"),
    "opening.line_confirmed": _l("A bidder confirmed its opening line"),
    "opening.line_objected": _l("A bidder objected to its opening line"),
    "opening.incident": _l("Opening incident recorded"),
    "panel.drawn": _l("Evaluation panel drawn"),
    "panel.accepted": _l("An expert accepted the invitation"),
    "panel.declined": _l("An expert declined the invitation"),
    "panel.conflict_declared": _l("An expert declared on conflicts of interest"),
    "panel.member_removed": _l("An expert was removed from the panel"),
    "evaluation.started": _l("Evaluation started"),
    "evaluation.review_confirmed": _l("Compliance review confirmed"),
    "evaluation.unblinded": _l("Technical scores unblinded"),
    "evaluation.lot_drawn": _l("Tie broken by drawing lots"),
    "evaluation.finalised": _l("Evaluation finalised"),
    "scoring.draft_saved": _l("An expert saved scores"),
    "scoring.sheet_locked": _l("An expert locked a score sheet"),
    "scoring.sheet_reopened": _l("A score sheet was reopened"),
    "scoring.outlier_reason": _l("An expert explained an outlying score"),
    "record.requested": _l("Evaluation record requested"),
    "record.signed": _l("Evaluation record signed"),
    "record.countersigned": _l("Evaluation record countersigned"),
    "record.superseded": _l("Evaluation record superseded"),
    "record.failed": _l("Evaluation record failed"),
    "results.candidates_published": _l("Candidates published"),
    "results.objection_filed": _l("Objection filed"),
    "results.objection_upheld": _l("Objection upheld"),
    "results.objection_dismissed": _l("Objection dismissed"),
    "results.evaluation_reopened": _l("Sent back to evaluation"),
    "results.award_published": _l("Award published"),
    "results.letter_issued": _l("Result letter issued"),
    "clock.step": _l("Time-driven step performed"),
    "clock.alert_raised": _l("Overdue alert raised"),
    "clock.alert_resolved": _l("Overdue alert resolved"),
    "clock.retry_requested": _l("Retry of a failed step requested"),
    "auth.signed_in": _l("Signed in"),
    "auth.signed_out": _l("Signed out"),
    "auth.sign_in_failed": _l("Sign-in failed"),
    "auth.second_factor_failed": _l("Second factor refused"),
    "company.registered": _l("Company registered"),
    "company.approved": _l("Company approved"),
    "company.rejected": _l("Company rejected"),
    "centre.created": _l("Centre created"),
    "user.created": _l("Account created"),
    "user.role_changed": _l("Role changed"),
}
ROLE_LABELS = {
    Role.BIDDER: _l("Bidder"),
    Role.EXPERT: _l("Expert"),
    Role.STAFF: _l("Centre staff"),
    Role.CUSTODIAN: _l("Key custodian"),
    Role.SUPERVISOR: _l("Supervisor"),
    Role.ADMIN: _l("Administrator"),
}
# Bidders' own events: their actor is never named before the opening.
BIDDER_ACTIONS = frozenset(
    {"bid.received", "bid.withdrawn", "tender.registered", "tender.enquiry_asked"}
)


def action_label(action: str) -> str:
    known = ACTION_LABELS.get(action)
    if known is not None:
        return str(known)
    return label(action, "audit_action")  # the app's one list of translated codes


def role_label(role: str | None) -> str:
    return str(ROLE_LABELS.get(role) or label(role, "role")) if role else ""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime
    action: str
    label: str
    actor: str  # a name, "Bidder" (sealed), or "" for the system (the clock)
    role: str


def user_names(ids) -> dict[int, str]:
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def actor_name(event: AuditEvent, names: dict[int, str], sealed: bool) -> str:
    if event.actor_id is None:
        return str(_l("The system"))
    if sealed and (event.actor_role == Role.BIDDER or event.action in BIDDER_ACTIONS):
        return role_label(Role.BIDDER)
    return names.get(event.actor_id, str(_l("Account %(id)s", id=event.actor_id)))


def tender_events_query(tender: Tender):
    """Events about the tender itself, its bids, and objects naming it in their data."""
    bid_ids = select(cast(Bid.id, String)).where(Bid.tender_id == tender.id)
    needle = [f'"tender":{tender.id},', f'"tender":{tender.id}}}']
    needle += [f'"tender_id":{tender.id},', f'"tender_id":{tender.id}}}']
    return select(AuditEvent).where(
        or_(
            (AuditEvent.object_type == "tender") & (AuditEvent.object_id == str(tender.id)),
            (AuditEvent.object_type == "bid") & (AuditEvent.object_id.in_(bid_ids)),
            *[AuditEvent.data.contains(n) for n in needle],
        )
    )


def tender_timeline(tender: Tender, limit: int = 500) -> list[Entry]:
    events = list(
        db.session.scalars(tender_events_query(tender).order_by(AuditEvent.seq).limit(limit))
    )
    sealed = tender.status in SEALED_STATUSES
    names = user_names(e.actor_id for e in events)
    return [
        Entry(
            seq=e.seq,
            at=e.occurred_at,
            action=e.action,
            label=action_label(e.action),
            actor=actor_name(e, names, sealed),
            role=role_label(e.actor_role) if not (sealed and e.action in BIDDER_ACTIONS) else "",
        )
        for e in events
    ]
