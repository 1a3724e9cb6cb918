"""A supervisor's intervention in a tender, under dual control.

One supervisor suspends a tender at any stage before the award, with a public reason. While
the suspension holds, the tender's clock stops: nothing is opened (bids stay sealed), no
upload is accepted and no stage action is taken (`refuse_if_suspended`, called by every
stage's actions and by the clock). Lifting it takes two people: a supervisor asks to resume
(or to resume with a re-evaluation), and a *different* supervisor approves; the one who
suspended cannot approve either. On approval every deadline that was still ahead when the
tender stopped (enquiries, bids, opening) moves by the time it stood still, so every window
resumes with the time it had left; the evaluation period is counted without the suspended
time (`suspended_seconds_since`).

Everything is audited (`tender.suspended`, `tender.resume_requested`,
`tender.resume_request_withdrawn`, `tender.resumed`), public on the tender page and in OCDS,
and told to everyone involved (`people_involved`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Integer, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.accounts.models import Role, User
from app.audit import append_event
from app.centres.operations import oversees
from app.core.errors import Conflict, OperationError
from app.core.types import UTCDateTime, utcnow
from app.core.urls import public_url
from app.events import CHANNEL_PREFIX, publish_after_commit
from app.extensions import db
from app.permissions import Permission, PermissionDenied, require
from app.tenders import documents
from app.tenders.models import Tender, TenderCustodian, TenderStatus
from app.tenders.notify import notify_users, registered_bidders
from app.tenders.signals import people_involved_asked, reevaluation_ordered

MAX_REASON = 2000
SUPERVISION_CHANNEL = CHANNEL_PREFIX + "supervision"

# Before the award: a draft is nobody's business yet, an ended tender has nothing to stop.
SUSPENDABLE = frozenset(
    {
        TenderStatus.PUBLISHED,
        TenderStatus.CLOSED,
        TenderStatus.OPENED,
        TenderStatus.EVALUATING,
        TenderStatus.CANDIDATES,
    }
)
# A re-evaluation only makes sense once there is an evaluation to redo.
REEVALUABLE = frozenset({TenderStatus.EVALUATING, TenderStatus.CANDIDATES})


class SuspensionStatus(StrEnum):
    ACTIVE = "active"  # suspended, nobody asked to resume yet
    REQUESTED = "requested"  # a supervisor asked to resume; a second one must approve
    LIFTED = "lifted"  # resumed


class ResumeKind(StrEnum):
    RESUME = "resume"
    REEVALUATE = "reevaluate"


class TenderSuspension(db.Model):
    __tablename__ = "tender_suspension"

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=SuspensionStatus.ACTIVE, index=True)
    stage: Mapped[str] = mapped_column(String(16))  # the tender's status when suspended
    reason: Mapped[str] = mapped_column(Text)
    suspended_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    suspended_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_kind: Mapped[str | None] = mapped_column(String(16))
    request_note: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How long the tender stood still, and whether its bid deadline moved by that much.
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)
    deadline_moved: Mapped[bool] = mapped_column(default=False)

    tender: Mapped[Tender] = relationship()
    suspended_by: Mapped[User] = relationship(foreign_keys=[suspended_by_id])
    requested_by: Mapped[User | None] = relationship(foreign_keys=[requested_by_id])
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])

    @property
    def is_active(self) -> bool:
        return self.status != SuspensionStatus.LIFTED

    @property
    def paused(self) -> timedelta:
        return timedelta(seconds=self.paused_seconds)


# --- reading ---------------------------------------------------------------------------------


def active_suspension(tender_id: int) -> TenderSuspension | None:
    """The suspension holding the tender now, if any (read fresh from the database)."""
    return db.session.scalar(
        select(TenderSuspension)
        .where(
            TenderSuspension.tender_id == tender_id,
            TenderSuspension.status != SuspensionStatus.LIFTED,
        )
        .order_by(TenderSuspension.id.desc())
        .limit(1)
    )


def is_suspended(tender_id: int) -> bool:
    return active_suspension(tender_id) is not None


def suspended_tender_ids() -> set[int]:
    return set(
        db.session.scalars(
            select(TenderSuspension.tender_id).where(
                TenderSuspension.status != SuspensionStatus.LIFTED
            )
        )
    )


def suspensions_of(tender: Tender) -> list[TenderSuspension]:
    """Every suspension of the tender, oldest first (all public)."""
    return list(
        db.session.scalars(
            select(TenderSuspension)
            .where(TenderSuspension.tender_id == tender.id)
            .order_by(TenderSuspension.suspended_at, TenderSuspension.id)
        )
    )


def suspended_seconds_since(tender_id: int, since: datetime) -> int:
    """Seconds the tender stood still after `since` (lifted suspensions only): a period that
    started at `since` ends that much later."""
    rows = db.session.execute(
        select(TenderSuspension.suspended_at, TenderSuspension.lifted_at).where(
            TenderSuspension.tender_id == tender_id,
            TenderSuspension.status == SuspensionStatus.LIFTED,
            TenderSuspension.lifted_at > since,
        )
    )
    total = 0
    for start, end in rows:
        total += int((end - max(start, since)).total_seconds())
    return total


class TenderSuspended(Conflict):
    """A stage action refused because a supervisor suspended the tender."""

    def __init__(self, suspension: TenderSuspension) -> None:
        super().__init__(
            _l(
                "This tender is suspended by the supervision authority since %(at)s: "
                "%(reason)s. Nothing can be submitted or done on it until a second "
                "supervisor approves its resumption.",
                at=suspension.suspended_at.strftime("%Y-%m-%d %H:%M UTC"),
                reason=suspension.reason,
            ),
            code="suspended",
        )
        self.suspension_id = suspension.id

    def detail(self) -> dict[str, int]:
        return {"suspension": self.suspension_id}


def refuse_if_suspended(tender: Tender | int) -> None:
    """Every stage action calls this first (after its permission check): refused while the
    tender is suspended."""
    tender_id = tender if isinstance(tender, int) else tender.id
    suspension = active_suspension(tender_id)
    if suspension is not None:
        raise TenderSuspended(suspension)


# --- who hears about it ------------------------------------------------------------------------


def people_involved(tender: Tender) -> list[User]:
    """Registered bidders, the centre's staff, the tender's custodians, every supervisor, and
    whoever later stages name (the panel: `people_involved_asked`)."""
    found: dict[int, User] = {u.id: u for u in registered_bidders(tender)}
    staff = db.session.scalars(
        select(User).where(
            User.is_enabled.is_(True),
            (
                (User.role == Role.STAFF) & (User.centre_id == tender.centre_id)
                | (User.role == Role.SUPERVISOR)
                | User.id.in_(
                    select(TenderCustodian.user_id).where(TenderCustodian.tender_id == tender.id)
                )
            ),
        )
    )
    for user in staff:
        found.setdefault(user.id, user)
    for _receiver, users in people_involved_asked.send(tender):
        for user in users or ():
            found.setdefault(user.id, user)
    return sorted(found.values(), key=lambda u: u.id)


def _notify(tender: Tender, subject, template: str, **context) -> None:
    link = public_url("portal.tender", tender_id=tender.id)
    notify_users(people_involved(tender), tender, subject, template, link, **context)


def _announce(tender: Tender, event: str, suspension: TenderSuspension) -> None:
    payload = {"tender": tender.id, "event": event, "suspension": suspension.id}
    publish_after_commit(SUPERVISION_CHANNEL, {**payload, "centre": tender.centre_id})
    documents.invalidate_portal_cache()


def _clean_reason(reason: str, message) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise OperationError(message, code="reason")
    if len(reason) > MAX_REASON:
        raise OperationError(
            _l("Keep the reason under %(n)s characters.", n=MAX_REASON), code="reason"
        )
    return reason


def _require(actor: User, tender: Tender) -> None:
    """The permission, and the tender within the supervisor's jurisdiction."""
    require(actor, Permission.SUPERVISE_TENDERS)
    if not oversees(actor, tender.centre_id):
        raise PermissionDenied()


def _lock(tender: Tender) -> None:
    db.session.execute(select(Tender.id).where(Tender.id == tender.id).with_for_update())


# --- the three steps -----------------------------------------------------------------------------


def suspend_tender(actor: User, tender: Tender, reason: str) -> TenderSuspension:
    """Stop the tender now with a public reason."""
    _require(actor, tender)
    _lock(tender)
    db.session.refresh(tender)
    if tender.status not in SUSPENDABLE:
        raise Conflict(
            _l("Only a published tender not yet awarded, failed or cancelled can be suspended."),
            code="status",
        )
    if active_suspension(tender.id) is not None:
        raise Conflict(_l("This tender is already suspended."), code="already_suspended")
    reason = _clean_reason(reason, _l("Give the public reason for the suspension."))
    suspension = TenderSuspension(
        tender_id=tender.id,
        status=SuspensionStatus.ACTIVE,
        stage=tender.status,
        reason=reason,
        suspended_by_id=actor.id,
        suspended_at=utcnow(),
    )
    db.session.add(suspension)
    db.session.flush()
    append_event(
        "tender.suspended",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"suspension": suspension.id, "stage": tender.status, "reason": reason},
    )
    _notify(
        tender,
        _l("Tender %(ref)s is suspended", ref=tender.reference),
        "tender_suspended",
        suspension=suspension,
    )
    _announce(tender, "suspended", suspension)
    return suspension


def request_resumption(
    actor: User, tender: Tender, kind: str = ResumeKind.RESUME, note: str = ""
) -> TenderSuspension:
    """Ask to lift the suspension (kind `resume`) or to lift it and redo the evaluation
    (kind `reevaluate`). A second supervisor approves."""
    _require(actor, tender)
    _lock(tender)
    suspension = active_suspension(tender.id)
    if suspension is None:
        raise Conflict(_l("This tender is not suspended."), code="not_suspended")
    if suspension.status == SuspensionStatus.REQUESTED:
        raise Conflict(
            _l("A resumption is already waiting for approval."), code="already_requested"
        )
    if kind not in set(ResumeKind):
        raise OperationError(_l("Choose to resume, or to resume with a re-evaluation."), "kind")
    if kind == ResumeKind.REEVALUATE and tender.status not in REEVALUABLE:
        raise Conflict(
            _l("A re-evaluation can be ordered only once the evaluation has started."),
            code="not_evaluating",
        )
    note = _clean_reason(note, _l("Say why the tender may resume."))
    suspension.status = SuspensionStatus.REQUESTED
    suspension.request_kind = kind
    suspension.request_note = note
    suspension.requested_by_id = actor.id
    suspension.requested_at = utcnow()
    append_event(
        "tender.resume_requested",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"suspension": suspension.id, "kind": kind, "note": note},
    )
    _notify(
        tender,
        _l("Resumption of tender %(ref)s requested", ref=tender.reference),
        "tender_resume_requested",
        suspension=suspension,
    )
    _announce(tender, "resume_requested", suspension)
    return suspension


def withdraw_request(actor: User, tender: Tender) -> TenderSuspension:
    """The requester (or any supervisor) takes a pending request back; the tender stays
    suspended."""
    _require(actor, tender)
    _lock(tender)
    suspension = active_suspension(tender.id)
    if suspension is None or suspension.status != SuspensionStatus.REQUESTED:
        raise Conflict(_l("No resumption is waiting for approval."), code="not_requested")
    append_event(
        "tender.resume_request_withdrawn",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"suspension": suspension.id, "kind": suspension.request_kind},
    )
    suspension.status = SuspensionStatus.ACTIVE
    suspension.request_kind = None
    suspension.request_note = ""
    suspension.requested_by_id = None
    suspension.requested_at = None
    _announce(tender, "resume_request_withdrawn", suspension)
    return suspension


def approve_resumption(actor: User, tender: Tender) -> TenderSuspension:
    """The second supervisor's approval: the tender resumes with the time it had left (and
    goes back to evaluation if a re-evaluation was asked)."""
    _require(actor, tender)
    _lock(tender)
    db.session.refresh(tender)
    suspension = active_suspension(tender.id)
    if suspension is None or suspension.status != SuspensionStatus.REQUESTED:
        raise Conflict(_l("No resumption is waiting for approval."), code="not_requested")
    if actor.id in (suspension.suspended_by_id, suspension.requested_by_id):
        raise Conflict(
            _l(
                "Dual control: a second supervisor, who neither suspended the tender nor "
                "asked to resume it, must approve."
            ),
            code="same_supervisor",
            status=403,
        )
    now = utcnow()
    # Whole seconds: the open data subtracts the same shift from the releases before it.
    paused = timedelta(seconds=max(int((now - suspension.suspended_at).total_seconds()), 0))
    moved = {}
    for field in ("enquiry_deadline", "submission_deadline", "opening_at"):
        value: datetime = getattr(tender, field)
        if value > suspension.suspended_at:
            setattr(tender, field, value + paused)
            moved[field] = (value + paused).isoformat()
    suspension.status = SuspensionStatus.LIFTED
    suspension.approved_by_id = actor.id
    suspension.lifted_at = now
    suspension.paused_seconds = int(paused.total_seconds())
    suspension.deadline_moved = "submission_deadline" in moved
    db.session.flush()
    append_event(
        "tender.resumed",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "suspension": suspension.id,
            "kind": suspension.request_kind,
            "requested_by": suspension.requested_by_id,
            "paused_seconds": suspension.paused_seconds,
            "moved": moved,
        },
    )
    if suspension.request_kind == ResumeKind.REEVALUATE:
        reason = _l(
            "Re-evaluation ordered by the supervision authority: %(note)s",
            note=suspension.request_note,
        )
        reevaluation_ordered.send(tender, actor=actor, reason=str(reason))
    _notify(
        tender,
        _l("Tender %(ref)s resumes", ref=tender.reference),
        "tender_resumed",
        suspension=suspension,
    )
    _announce(tender, "resumed", suspension)
    return suspension


def request_state(suspension: TenderSuspension | None) -> dict | None:
    """The public summary of a suspension (the tender page, the API)."""
    if suspension is None:
        return None
    return {
        "id": suspension.id,
        "status": suspension.status,
        "stage": suspension.stage,
        "reason": suspension.reason,
        "suspended_at": suspension.suspended_at.isoformat(),
        "request": (
            {
                "kind": suspension.request_kind,
                "note": suspension.request_note,
                "requested_at": suspension.requested_at.isoformat(),
            }
            if suspension.requested_at
            else None
        ),
        "lifted_at": suspension.lifted_at.isoformat() if suspension.lifted_at else None,
        "paused_seconds": suspension.paused_seconds,
    }


# --- the guard under every stage -----------------------------------------------------------------

# Rows that may change while a tender is suspended: the suspension itself, the clock's own
# bookkeeping, enquiries (questions and answers go on), notifications, the audit log (every
# refusal and the suspension itself are audited) and supervisors' red flags (a flag never
# changes a tender).
WRITABLE_WHILE_SUSPENDED = frozenset(
    {
        "tender_suspension",
        "clock_alert",
        "clock_step",
        "enquiry",
        "notification",
        "audit_event",
        "red_flag",
    }
)


def _guard_flush(session, _flush_context, _instances) -> None:
    """Refuse a flush that changes a suspended tender or a row of it (`tender_id`): every
    stage's writes pass here, so a stage action that forgot `refuse_if_suspended` is still
    refused, with the same error."""
    touched: set[int] = set()
    lifting: set[int] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenderSuspension):
            if obj.status == SuspensionStatus.LIFTED:
                lifting.add(obj.tender_id)
            continue
        if getattr(obj, "__tablename__", None) in WRITABLE_WHILE_SUSPENDED:
            continue
        if isinstance(obj, Tender):
            if obj in session.new or not session.is_modified(obj, include_collections=False):
                continue
            touched.add(obj.id)
            continue
        tender_id = getattr(obj, "tender_id", None)
        if isinstance(tender_id, int) and (
            obj in session.deleted or obj in session.new or session.is_modified(obj)
        ):
            touched.add(tender_id)
    touched -= lifting
    if not touched:
        return
    with session.no_autoflush:
        suspension = session.scalar(
            select(TenderSuspension)
            .where(
                TenderSuspension.tender_id.in_(sorted(touched)),
                TenderSuspension.status != SuspensionStatus.LIFTED,
            )
            .limit(1)
        )
    if suspension is not None:
        raise TenderSuspended(suspension)


def install_guard() -> None:
    """Called once by the app factory (idempotent)."""
    if not event.contains(Session, "before_flush", _guard_flush):
        event.listen(Session, "before_flush", _guard_flush)
