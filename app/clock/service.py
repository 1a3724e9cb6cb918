"""The tick: every time-driven step that is due, performed once, through the normal operations.

`tick(now)` is the source of truth; whatever runs it (`flask clock`, the RQ job, a test) may
run it late, twice or concurrently:

- each step runs in a transaction of its own that first locks the tender's row
  (`SELECT … FOR UPDATE`; SQLite serialises writers anyway) and re-checks, under the lock,
  the state the step changes (a published tender, a tender without a sealing record, no
  `ClockStep` row for a notification). A second tick waits for the lock, then finds the step
  done. A tick that was not running for an hour finds every step that became due meanwhile
  and performs each once.
- each step is audited (`clock.step`) with the time it was due and the time it ran, in the
  transaction of its change.
- a step that raises is rolled back and leaves a `failed_<step>` alert for the centre's staff
  (attempts, the error); the next tick retries it and resolves the alert when it succeeds.
- overdue watches (an opening not started, an evaluation past its period, …) raise one alert
  per (kind, tender) and resolve it when the state shows the step done. Only state resolves
  an alert, never time, so a clock moving backwards neither undoes nor redoes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context, url_for
from flask_babel import force_locale, get_timezone
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, false, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app.accounts.models import Role, User
from app.audit import append_event
from app.audit.export import checkpoint_due, make_checkpoint
from app.bids import operations as bid_ops
from app.bids.models import Bid, BidStatus
from app.bids.receipts import platform_signing_key
from app.clock.models import ClockAlert, ClockReminder, ClockStep
from app.companies.models import Company, CompanyCertificate, CompanyStatus
from app.core.cache import invalidate_after_commit
from app.core.mail import send_after_commit
from app.core.types import CLOCK_OFFSET, utcnow
from app.custody.models import KeyShare
from app.evaluations.models import Evaluation, EvaluationStage, ScoreSheet
from app.extensions import db
from app.opening import operations as opening_ops
from app.opening.models import EvaluatedBid, OpeningSession, OpeningStatus
from app.panels.models import MemberStatus, PanelMember
from app.records.models import EvaluationRecord, RecordStatus
from app.results.models import NoticeKind, Objection, ObjectionStatus, ResultNotice
from app.supervision.flag_jobs import nightly as nightly_flags
from app.tenders.models import Notification, Tender, TenderDocument, TenderStatus
from app.tenders.notify import notify_users, registered_bidders
from app.tenders.suspension import is_suspended, suspended_seconds_since, suspended_tender_ids
from bidding.audit_export import sign_checkpoint

log = logging.getLogger(__name__)

SEALING_KIND = "sealing_record"


@dataclass(frozen=True)
class Pending:
    """A step or a watch not yet done for a tender, and when it is (or was) due."""

    tender_id: int
    centre_id: int
    due_at: datetime
    key: str = ""  # a window of one object of the tender (a notice, a bid): its id


@dataclass
class TickReport:
    now: datetime
    performed: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)
    raised: list[tuple[str, int]] = field(default_factory=list)
    resolved: list[tuple[str, int]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)  # seq of each signed chain head


# --- configuration -------------------------------------------------------------------------


def _minutes(name: str, default: int) -> timedelta:
    return timedelta(minutes=int(current_app.config.get(name, default)))


def _period(name: str, default: int, unit: str = "days") -> timedelta:
    """A configured period of the clock (`CLOCK_*`), in `unit` (days, hours, seconds)."""
    return timedelta(**{unit: int(current_app.config.get(name, default))})


def _days(name: str, default: int) -> timedelta:
    return _period(name, default)


# --- steps ---------------------------------------------------------------------------------


def _close_pending(now: datetime) -> list[Pending]:
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.submission_deadline)
        .where(Tender.status == TenderStatus.PUBLISHED, Tender.submission_deadline <= now)
        .order_by(Tender.submission_deadline, Tender.id)
    )
    return [Pending(*row) for row in rows]


def _close(tender: Tender, due_at: datetime, now: datetime, key: str = "") -> bool:
    """The bid deadline: published → closed (uploads after it are refused by the bids stage)."""
    if not opening_ops.close_if_due(tender, now):
        return False
    invalidate_after_commit()
    return True


_SEALABLE = (
    TenderStatus.CLOSED,
    TenderStatus.OPENED,
    TenderStatus.EVALUATING,
    TenderStatus.CANDIDATES,
    TenderStatus.AWARDED,
    TenderStatus.FAILED,
)


def _has_sealing_record():
    return exists().where(
        TenderDocument.tender_id == Tender.id, TenderDocument.kind == SEALING_KIND
    )


def _seal_pending(now: datetime) -> list[Pending]:
    grace = bid_ops.sealing_grace()
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.submission_deadline)
        .where(
            Tender.status.in_(_SEALABLE),
            Tender.submission_deadline <= now - grace,
            ~_has_sealing_record(),
        )
        .order_by(Tender.submission_deadline, Tender.id)
    )
    return [Pending(tid, cid, deadline + grace) for tid, cid, deadline in rows]


def _seal(tender: Tender, due_at: datetime, now: datetime, key: str = "") -> bool:
    """The sealing record (Merkle root of the envelopes), signed and published once the
    deadline's grace period has passed: what `app.bids.jobs.seal_tender` does, in the
    tick's transaction so that its `clock.step` event goes with it."""
    if tender.status not in _SEALABLE or bid_ops.sealing_record_of(tender) is not None:
        return False
    bid_ops.seal_bids(tender)
    invalidate_after_commit()
    return True


def _notice_pending(step: str) -> Callable[[datetime], list[Pending]]:
    def pending(now: datetime) -> list[Pending]:
        done = exists().where(ClockStep.tender_id == Tender.id, ClockStep.step == step)
        rows = db.session.execute(
            select(Tender.id, Tender.centre_id, Tender.opening_at)
            .where(Tender.status == TenderStatus.CLOSED, Tender.opening_at <= now, ~done)
            .order_by(Tender.opening_at, Tender.id)
        )
        return [Pending(*row) for row in rows]

    return pending


def _opening_people(tender: Tender) -> list[tuple[User, str]]:
    """Everyone with something to do at the opening, each once, with what they have to do."""
    people: dict[int, tuple[User, str]] = {}
    custodians = db.session.scalars(
        select(User)
        .join(KeyShare, KeyShare.custodian_id == User.id)
        .where(KeyShare.tender_id == tender.id, User.is_enabled.is_(True))
        .order_by(User.id)
    )
    for user in custodians:
        people[user.id] = (user, "custodian")
    staff = db.session.scalars(
        select(User)
        .where(
            User.role == Role.STAFF,
            User.centre_id == tender.centre_id,
            User.is_enabled.is_(True),
        )
        .order_by(User.id)
    )
    for user in staff:
        people.setdefault(user.id, (user, "staff"))
    for user in registered_bidders(tender):
        people.setdefault(user.id, (user, "bidder"))
    return list(people.values())


def _opening_notice(tender: Tender, due_at: datetime, now: datetime, key: str = "") -> bool:
    """The opening time: custodians, the centre's staff and registered bidders are told (in
    the app and by e-mail) what each has to do. Guarded by its `ClockStep` row."""
    if tender.status != TenderStatus.CLOSED or _step_done("opening_notice", tender.id):
        return False
    db.session.add(ClockStep(step="opening_notice", tender_id=tender.id, due_at=due_at, ran_at=now))
    db.session.flush()
    link = url_for("opening.tender", tender_id=tender.id, _external=True)
    by_role: dict[str, list[User]] = {}
    for user, role in _opening_people(tender):
        by_role.setdefault(role, []).append(user)
    for role, users in by_role.items():
        notify_users(
            users,
            tender,
            _l("The opening of tender %(reference)s has begun", reference=tender.reference),
            "opening_time",
            link,
            role=role,
        )
    return True


def _step_done(step: str, tender_id: int) -> bool:
    return (
        db.session.scalar(
            select(ClockStep.id).where(ClockStep.step == step, ClockStep.tender_id == tender_id)
        )
        is not None
    )


# --- windows closing ------------------------------------------------------------------------
# A window closes by itself (the operations compare the server clock with its end); the
# clock tells the people who act next, once per window (its `ClockStep` row, "<step>:<key>").


def _undone(step: str, rows) -> list[Pending]:
    done = set(db.session.scalars(select(ClockStep.step).where(ClockStep.step.like(f"{step}:%"))))
    found = (Pending(tid, cid, due, str(key)) for tid, cid, due, key in rows)
    return [p for p in found if f"{step}:{p.key}" not in done]


def _enquiry_pending(now: datetime) -> list[Pending]:
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.enquiry_deadline, Tender.id.label("key"))
        .where(Tender.status == TenderStatus.PUBLISHED, Tender.enquiry_deadline <= now)
        .order_by(Tender.enquiry_deadline, Tender.id)
    )
    return _undone("enquiry_window", rows)


def _opening_window_pending(now: datetime) -> list[Pending]:
    window = timedelta(minutes=int(current_app.config.get("OPENING_OBJECTION_MINUTES", 30)))
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, OpeningSession.completed_at, Tender.id.label("key"))
        .join(OpeningSession, OpeningSession.tender_id == Tender.id)
        .where(
            OpeningSession.status == OpeningStatus.COMPLETED,
            OpeningSession.completed_at.is_not(None),
            OpeningSession.completed_at <= now - window,
        )
    )
    return [
        Pending(p.tender_id, p.centre_id, p.due_at + window, p.key)
        for p in _undone("opening_window", rows)
    ]


def _candidates_window_pending(now: datetime) -> list[Pending]:
    rows = db.session.execute(
        select(
            Tender.id,
            Tender.centre_id,
            ResultNotice.objection_deadline,
            ResultNotice.id.label("key"),
        )
        .join(ResultNotice, ResultNotice.tender_id == Tender.id)
        .where(
            Tender.status == TenderStatus.CANDIDATES,
            ResultNotice.kind == NoticeKind.CANDIDATES,
            ResultNotice.superseded_at.is_(None),
            ResultNotice.objection_deadline <= now,
        )
    )
    return _undone("candidates_window", rows)


def _low_price_pending(now: datetime) -> list[Pending]:
    rows = db.session.execute(
        select(
            Tender.id, Tender.centre_id, EvaluatedBid.low_price_due_at, EvaluatedBid.id.label("key")
        )
        .join(EvaluatedBid, EvaluatedBid.tender_id == Tender.id)
        .where(
            EvaluatedBid.low_price_status == "requested",
            EvaluatedBid.low_price_due_at <= now,
        )
    )
    return _undone("low_price_window", rows)


def _centre_staff(tender: Tender) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(
                User.role == Role.STAFF,
                User.centre_id == tender.centre_id,
                User.is_enabled.is_(True),
            )
            .order_by(User.id)
        )
    )


def _window_step(step: str, subject, message, still_open: Callable[[Tender], bool]):
    def perform(tender: Tender, due_at: datetime, now: datetime, key: str) -> bool:
        name = f"{step}:{key}"
        if not still_open(tender) or _step_done(name, tender.id):
            return False
        db.session.add(ClockStep(step=name, tender_id=tender.id, due_at=due_at, ran_at=now))
        db.session.flush()
        if _caught_up(step, tender, due_at, now, key):
            return False  # recorded as done, audited as skipped, nobody told
        people = _centre_staff(tender)
        if step == "low_price_window":
            chair = db.session.scalar(
                select(User)
                .join(Evaluation, Evaluation.chair_id == User.id)
                .where(Evaluation.tender_id == tender.id)
            )
            if chair is not None and chair not in people:
                people.append(chair)
        link = url_for("opening.tender", tender_id=tender.id, _external=True)
        notify_users(
            people,
            tender,
            subject(tender.reference),
            "window_closed",
            link,
            message=message(tender.reference),
        )
        return True

    return perform


# --- reminders ----------------------------------------------------------------------------


def _reminder_hours() -> int:
    return _period("CLOCK_BID_REMINDER_HOURS", 0, "hours") // timedelta(hours=1)


def _bid_reminder_pending(now: datetime) -> list[Pending]:
    hours = _reminder_hours()
    if hours <= 0:
        return []  # off by default
    ahead = timedelta(hours=hours)
    done = exists().where(ClockStep.tender_id == Tender.id, ClockStep.step == "bid_reminder")
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.submission_deadline)
        .where(
            Tender.status == TenderStatus.PUBLISHED,
            Tender.submission_deadline > now,
            Tender.submission_deadline <= now + ahead,
            ~done,
        )
        .order_by(Tender.submission_deadline, Tender.id)
    )
    return [Pending(tid, cid, deadline - ahead) for tid, cid, deadline in rows]


def _bid_reminder(tender: Tender, due_at: datetime, now: datetime, key: str = "") -> bool:
    """Registered companies without a submitted bid, FAIRBID_CLOCK_BID_REMINDER_HOURS before
    the deadline (0: off): each of their users is reminded once."""
    if tender.status != TenderStatus.PUBLISHED or _step_done("bid_reminder", tender.id):
        return False
    db.session.add(ClockStep(step="bid_reminder", tender_id=tender.id, due_at=due_at, ran_at=now))
    db.session.flush()
    submitted = set(
        db.session.scalars(
            select(Bid.company_id).where(
                Bid.tender_id == tender.id, Bid.status == BidStatus.SUBMITTED
            )
        )
    )
    people = [u for u in registered_bidders(tender) if u.company_id not in submitted]
    link = url_for("portal.tender", tender_id=tender.id, _external=True)
    notify_users(
        people,
        tender,
        _l("Tender %(reference)s closes soon", reference=tender.reference),
        "window_closed",
        link,
        message=_l(
            "Your company has not submitted a bid for tender %(reference)s; the deadline is "
            "%(deadline)s UTC.",
            reference=tender.reference,
            deadline=tender.submission_deadline.strftime("%Y-%m-%d %H:%M"),
        ),
    )
    return True


# --- first deployment catch-up --------------------------------------------------------------


def _catch_up_limit() -> timedelta:
    return _period("CLOCK_CATCH_UP_HOURS", 24, "hours")


def _caught_up(step: str, tender: Tender, due_at: datetime, now: datetime, key: str) -> bool:
    """A window that closed more than FAIRBID_CLOCK_CATCH_UP_HOURS before the tick (a first
    deployment, a clock down for days) is recorded as done without telling anyone: the
    news is stale and would flood people. Audited as skipped (`clock.step`, `skipped`)."""
    if now - due_at <= _catch_up_limit():
        return False
    append_event(
        "clock.step",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "step": step,
            "due_at": due_at.isoformat(),
            "ran_at": now.isoformat(),
            "key": key,
            "skipped": "caught_up",
        },
    )
    return True


# --- reminder: score sheets near the evaluation's end ----------------------------------------


def _sheet_reminder_hours() -> int:
    return _period("CLOCK_SHEET_REMINDER_HOURS", 24, "hours") // timedelta(hours=1)


def _sheet_reminder_pending(now: datetime) -> list[Pending]:
    hours = _sheet_reminder_hours()
    if hours <= 0:
        return []
    ahead = timedelta(hours=hours)
    done = exists().where(ClockStep.tender_id == Tender.id, ClockStep.step == "sheet_reminder")
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Evaluation.started_at, Tender.evaluation_days)
        .join(Evaluation, Evaluation.tender_id == Tender.id)
        .where(
            Tender.status == TenderStatus.EVALUATING,
            Evaluation.stage.in_((EvaluationStage.REVIEW, EvaluationStage.SCORING)),
            Evaluation.finalised_at.is_(None),
            ~done,
        )
        .order_by(Tender.id)
    )
    found = []
    for tid, cid, started, days in rows:
        end = started + timedelta(days=days)
        if end - ahead <= now < end:  # past the end, the evaluation_overdue alert takes over
            found.append(Pending(tid, cid, end - ahead))
    return found


def _experts_with_open_sheets(tender: Tender) -> list[User]:
    """Accepted panel members whose score sheet is not locked (or not begun)."""
    locked = exists().where(
        ScoreSheet.tender_id == tender.id,
        ScoreSheet.user_id == User.id,
        ScoreSheet.locked_at.is_not(None),
    )
    return list(
        db.session.scalars(
            select(User)
            .join(PanelMember, PanelMember.user_id == User.id)
            .where(
                PanelMember.tender_id == tender.id,
                PanelMember.status == MemberStatus.ACCEPTED,
                User.is_enabled.is_(True),
                ~locked,
            )
            .order_by(User.id)
        )
    )


def _sheet_reminder(tender: Tender, due_at: datetime, now: datetime, key: str = "") -> bool:
    """FAIRBID_CLOCK_SHEET_REMINDER_HOURS (24; 0: off) before the evaluation period ends,
    each expert of the panel whose score sheet is not locked is reminded once."""
    if tender.status != TenderStatus.EVALUATING or _step_done("sheet_reminder", tender.id):
        return False
    db.session.add(ClockStep(step="sheet_reminder", tender_id=tender.id, due_at=due_at, ran_at=now))
    db.session.flush()
    end = due_at + timedelta(hours=_sheet_reminder_hours())
    link = url_for("scoring.sheet", tender_id=tender.id, _external=True)
    notify_users(
        _experts_with_open_sheets(tender),
        tender,
        _l("Lock your score sheet of tender %(reference)s", reference=tender.reference),
        "window_closed",
        link,
        message=_l(
            "The evaluation period of tender %(reference)s ends at %(end)s UTC and your "
            "score sheet is not locked yet.",
            reference=tender.reference,
            end=end.strftime("%Y-%m-%d %H:%M"),
        ),
    )
    return True


# --- reminder: company certificates expiring ---------------------------------------------------
# Not a tender's step: guarded by its own `ClockReminder` row, unique per certificate,
# threshold and expiry date (a renewed date is a new certificate for the clock).


def _certificate_thresholds() -> list[int]:
    raw = str(current_app.config.get("CLOCK_CERTIFICATE_REMINDER_DAYS", "30,7"))
    return sorted({int(part) for part in raw.replace(" ", "").split(",") if part.strip()})


def _certificates_due(now: datetime) -> list[tuple[CompanyCertificate, int]]:
    """(certificate, threshold): the smallest threshold it is within, not yet reminded, for
    certificates of approved companies not renewed (no same-named certificate of the company
    expiring later)."""
    thresholds = [t for t in _certificate_thresholds() if t > 0]
    if not thresholds:
        return []
    today = now.astimezone(get_timezone()).date()  # certificates expire by the local calendar
    horizon = today + timedelta(days=max(thresholds))
    newer = aliased(CompanyCertificate)
    renewed = exists().where(
        newer.company_id == CompanyCertificate.company_id,
        newer.name == CompanyCertificate.name,
        newer.id != CompanyCertificate.id,
        or_(newer.expires_on.is_(None), newer.expires_on > CompanyCertificate.expires_on),
    )
    certificates = db.session.scalars(
        select(CompanyCertificate)
        .join(Company, Company.id == CompanyCertificate.company_id)
        .where(
            Company.status == CompanyStatus.APPROVED,
            CompanyCertificate.expires_on.is_not(None),
            CompanyCertificate.expires_on >= today,
            CompanyCertificate.expires_on <= horizon,
            ~renewed,
        )
        .order_by(CompanyCertificate.expires_on, CompanyCertificate.id)
    )
    sent = set(db.session.scalars(select(ClockReminder.key)))
    found = []
    for certificate in certificates:
        left = (certificate.expires_on - today).days
        threshold = min(t for t in thresholds if left <= t)
        if _certificate_key(certificate, threshold) not in sent:
            found.append((certificate, threshold))
    return found


def _certificate_key(certificate: CompanyCertificate, threshold: int) -> str:
    return f"certificate:{certificate.id}:{threshold}:{certificate.expires_on.isoformat()}"


def _remind_certificate(certificate_id: int, threshold: int, now: datetime) -> bool:
    """One reminder, in the caller's transaction: its row first (a second tick's insert fails),
    then the company's users told in the app and by e-mail, audited."""
    certificate = db.session.get(CompanyCertificate, certificate_id, populate_existing=True)
    if certificate is None or certificate.expires_on is None:
        return False
    key = _certificate_key(certificate, threshold)
    if db.session.scalar(select(ClockReminder.id).where(ClockReminder.key == key)):
        return False
    local_midnight = datetime.combine(certificate.expires_on, datetime.min.time())
    expires = local_midnight.replace(tzinfo=ZoneInfo(str(get_timezone()))).astimezone(UTC)
    due_at = expires - timedelta(days=threshold)
    db.session.add(
        ClockReminder(key=key, company_id=certificate.company_id, due_at=due_at, ran_at=now)
    )
    db.session.flush()
    users = db.session.scalars(
        select(User)
        .where(User.company_id == certificate.company_id, User.is_enabled.is_(True))
        .order_by(User.id)
    )
    link = url_for("bidder.profile", _external=True)
    subject = _l(
        "Your certificate %(name)s expires on %(date)s",
        name=certificate.name,
        date=certificate.expires_on.isoformat(),
    )
    message = _l(
        "The certificate %(name)s (no. %(number)s) of your company expires on %(date)s. "
        "Add the renewed certificate to your company profile.",
        name=certificate.name,
        number=certificate.number,
        date=certificate.expires_on.isoformat(),
    )
    for user in users:
        with force_locale(user.locale or "en"):
            title = str(subject)
        db.session.add(Notification(user_id=user.id, title=title, link=link, body=certificate.name))
        send_after_commit(
            user.email,
            subject,
            "window_closed",
            locale=user.locale,
            user=user,
            link=link,
            message=message,
        )
    append_event(
        "clock.step",
        object_type="company",
        object_id=certificate.company_id,
        data={
            "step": "certificate_reminder",
            "due_at": due_at.isoformat(),
            "ran_at": now.isoformat(),
            "key": key,
        },
    )
    return True


def _certificate_reminders(now: datetime, report: TickReport) -> None:
    for certificate, threshold in _certificates_due(now):
        certificate_id = certificate.id
        db.session.rollback()  # each reminder in a transaction of its own
        try:
            _begin_write()
            done = _remind_certificate(certificate_id, threshold, now)
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # another tick sent it
            continue
        except Exception:
            db.session.rollback()
            log.exception("certificate reminder %s failed", certificate_id)
            report.failed.append(("certificate_reminder", certificate_id))
            continue
        if done:
            report.performed.append(("certificate_reminder", certificate_id))
    db.session.rollback()


@dataclass(frozen=True)
class Step:
    name: str
    pending: Callable[[datetime], list[Pending]]
    perform: Callable[[Tender, datetime, datetime, str], bool]


# In this order: a tender closes, is sealed and its opening is announced in one tick.
STEPS: tuple[Step, ...] = (
    Step("bid_reminder", _bid_reminder_pending, _bid_reminder),
    Step("sheet_reminder", _sheet_reminder_pending, _sheet_reminder),
    Step("close", _close_pending, _close),
    Step("seal", _seal_pending, _seal),
    Step("opening_notice", _notice_pending("opening_notice"), _opening_notice),
    Step(
        "enquiry_window",
        _enquiry_pending,
        _window_step(
            "enquiry_window",
            lambda ref: _l("Enquiries for tender %(reference)s are closed", reference=ref),
            lambda ref: _l(
                "The enquiry deadline of tender %(reference)s has passed: bidders can no "
                "longer ask; answer the enquiries still open.",
                reference=ref,
            ),
            lambda tender: tender.status == TenderStatus.PUBLISHED,
        ),
    ),
    Step(
        "opening_window",
        _opening_window_pending,
        _window_step(
            "opening_window",
            lambda ref: _l(
                "The opening objection window of tender %(reference)s has closed", reference=ref
            ),
            lambda ref: _l(
                "Bidders can no longer object to their opening lines of tender %(reference)s: "
                "settle any objection and go on to the evaluation.",
                reference=ref,
            ),
            lambda tender: True,
        ),
    ),
    Step(
        "candidates_window",
        _candidates_window_pending,
        _window_step(
            "candidates_window",
            lambda ref: _l(
                "The objection window of tender %(reference)s has closed", reference=ref
            ),
            lambda ref: _l(
                "The objection period of the candidates notice of tender %(reference)s has "
                "ended: answer any open objection, then publish the award.",
                reference=ref,
            ),
            lambda tender: tender.status == TenderStatus.CANDIDATES,
        ),
    ),
    Step(
        "low_price_window",
        _low_price_pending,
        _window_step(
            "low_price_window",
            lambda ref: _l(
                "A price justification of tender %(reference)s is overdue", reference=ref
            ),
            lambda ref: _l(
                "A bidder of tender %(reference)s did not justify its abnormally low price "
                "within the window: the panel decides on the price without it.",
                reference=ref,
            ),
            lambda tender: tender.status == TenderStatus.EVALUATING,
        ),
    ),
)


# --- overdue watches -----------------------------------------------------------------------
# Each returns every tender whose step is not done (state only), with the time from which it
# is overdue; the tick raises an alert for those past that time and resolves the others.


def _sealing_late_after() -> timedelta:
    """How long after the bid deadline a missing sealing record is an alert (the issue: "a
    sealing record made later than a minute after the deadline"). The sealing grace is
    inside this minute, so a healthy clock never raises it."""
    return _period("CLOCK_SEALING_LATE_SECONDS", 60, "seconds")


def _watch_sealing(now: datetime) -> list[Pending]:
    late = _sealing_late_after()
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.submission_deadline).where(
            Tender.status.in_(_SEALABLE), ~_has_sealing_record()
        )
    )
    return [Pending(tid, cid, deadline + late) for tid, cid, deadline in rows]


def _watch_opening(now: datetime) -> list[Pending]:
    late = _minutes("CLOCK_OPENING_OVERDUE_MINUTES", 30)
    started = exists().where(OpeningSession.tender_id == Tender.id)
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Tender.opening_at).where(
            Tender.status == TenderStatus.CLOSED, ~started
        )
    )
    return [Pending(tid, cid, opening_at + late) for tid, cid, opening_at in rows]


def _watch_evaluation(now: datetime) -> list[Pending]:
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Evaluation.started_at, Tender.evaluation_days)
        .join(Evaluation, Evaluation.tender_id == Tender.id)
        .where(Tender.status == TenderStatus.EVALUATING, Evaluation.finalised_at.is_(None))
    )
    # The time the tender stood suspended does not count against its evaluation period.
    return [
        Pending(
            tid,
            cid,
            started + timedelta(days=days, seconds=suspended_seconds_since(tid, started)),
        )
        for tid, cid, started, days in rows
    ]


def _first_per_tender(rows, late: timedelta) -> list[Pending]:
    """One pending step per tender, due `late` after its first (tender, centre, moment) row."""
    found: dict[int, Pending] = {}
    for tid, cid, moment in rows:
        found.setdefault(tid, Pending(tid, cid, moment + late))
    return list(found.values())


def _watch_candidates(now: datetime) -> list[Pending]:
    late = _days("CLOCK_CANDIDATES_OVERDUE_DAYS", 3)
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, EvaluationRecord.completed_at)
        .join(EvaluationRecord, EvaluationRecord.tender_id == Tender.id)
        .where(
            Tender.status == TenderStatus.EVALUATING,
            EvaluationRecord.status.in_((RecordStatus.SIGNED, RecordStatus.COMPLETE)),
            EvaluationRecord.superseded_at.is_(None),
            EvaluationRecord.completed_at.is_not(None),
        )
    )
    return _first_per_tender(rows, late)


def _watch_award(now: datetime) -> list[Pending]:
    late = _days("CLOCK_AWARD_OVERDUE_DAYS", 5)
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, ResultNotice.objection_deadline)
        .join(ResultNotice, ResultNotice.tender_id == Tender.id)
        .where(
            Tender.status == TenderStatus.CANDIDATES,
            ResultNotice.kind == NoticeKind.CANDIDATES,
            ResultNotice.superseded_at.is_(None),
            ResultNotice.objection_deadline.is_not(None),
        )
    )
    return _first_per_tender(rows, late)


def _watch_objections(now: datetime) -> list[Pending]:
    late = _days("CLOCK_OBJECTION_ANSWER_DAYS", 3)
    rows = db.session.execute(
        select(Tender.id, Tender.centre_id, Objection.filed_at)
        .join(Objection, Objection.tender_id == Tender.id)
        .where(Objection.status == ObjectionStatus.OPEN)
        .order_by(Objection.filed_at)
    )
    return _first_per_tender(rows, late)


WATCHES: dict[str, Callable[[datetime], list[Pending]]] = {
    "sealing_late": _watch_sealing,
    "opening_not_started": _watch_opening,
    "evaluation_overdue": _watch_evaluation,
    "candidates_overdue": _watch_candidates,
    "award_overdue": _watch_award,
    "objection_unanswered": _watch_objections,
}
ALERT_TITLES = {
    "sealing_late": _l("Sealing record not made within a minute of the deadline"),
    "opening_not_started": _l("Opening not started after its time"),
    "evaluation_overdue": _l("Evaluation past its period"),
    "candidates_overdue": _l("Candidates not published after the evaluation record"),
    "award_overdue": _l("Award not made after the objection window"),
    "objection_unanswered": _l("Objection unanswered"),
    "failed_close": _l("Closing at the deadline failed"),
    "failed_seal": _l("Sealing record failed"),
    "failed_opening_notice": _l("Opening notifications failed"),
}


# --- the tick ------------------------------------------------------------------------------


def tick(now: datetime | None = None) -> TickReport:
    """Perform every step that is due at `now` (default: the server clock), then raise and
    resolve overdue alerts. Commits each step on its own; safe to run concurrently."""
    if now is None:
        now, token = utcnow(), None
    else:
        # The operations the steps call read the server clock: they see `now` too.
        token = CLOCK_OFFSET.set(now - datetime.now(UTC))
    report = TickReport(now=now)
    base = current_app.config.get("FAIRBID_BASE_URL", "http://127.0.0.1:5000/")
    context = (
        nullcontext() if has_request_context() else current_app.test_request_context(base_url=base)
    )
    try:
        with context:
            for step in STEPS:
                for pending in step.pending(now):
                    _run(step, pending, now, report)
                db.session.rollback()
            _certificate_reminders(now, report)
            _nightly_flags(now)
            _watch(now, report)
            _checkpoint(now, report)
    finally:
        if token is not None:
            CLOCK_OFFSET.reset(token)
    return report


def _nightly_flags(now: datetime) -> None:
    """Once a day, the supervisors' red flags over history (`app.supervision.flag_jobs`)."""
    try:
        nightly_flags(now)
    except Exception:
        db.session.rollback()
        log.exception("the nightly red-flag run could not be started")


def checkpoint_minutes() -> int:
    """`FAIRBID_AUDIT_CHECKPOINT_MINUTES`: the longest time between two signed checkpoints
    of a moving audit chain."""
    return int(current_app.config.get("AUDIT_CHECKPOINT_MINUTES", 5))


def checkpoint_audit(now: datetime, force: str | None = None) -> int | None:
    """Sign the audit chain's head when a tender milestone happened since the last
    checkpoint, or the configured period passed (only if the head moved); in a transaction
    of its own. Returns the checkpointed sequence number, or None. The tick runs it last;
    the drill runs it after each stage, on its simulated clock, and last with `force` (the
    reason) to sign whatever head it left."""
    db.session.rollback()
    _begin_write()
    reason = checkpoint_due(now, 0 if force else checkpoint_minutes())
    if reason is not None and force:
        reason = force
    row = None
    if reason is not None:
        key = platform_signing_key()
        row = make_checkpoint(now, reason, lambda body: sign_checkpoint(body, key))
    db.session.commit()
    return row.seq if row is not None else None


def _checkpoint(now: datetime, report: TickReport) -> None:
    try:
        seq = checkpoint_audit(now)
    except Exception:  # the tick goes on; the next one tries again
        db.session.rollback()
        log.exception("audit checkpoint failed")
        report.failed.append(("audit_checkpoint", 0))
        return
    if seq is not None:
        report.checkpoints.append(seq)


def _lock(tender_id: int) -> Tender | None:
    """The tender, its row locked for this step's transaction. A no-op UPDATE is the first
    statement: on PostgreSQL it takes the row lock (as FOR UPDATE would), on SQLite the
    database's write lock, so that a concurrent tick waits here instead of failing later
    on a stale read (SQLite's WAL refuses to upgrade a read transaction that is behind)."""
    db.session.execute(update(Tender).where(Tender.id == tender_id).values(status=Tender.status))
    return db.session.scalar(
        select(Tender).where(Tender.id == tender_id).execution_options(populate_existing=True)
    )


def _begin_write() -> None:
    """Start the transaction with a write (SQLite only; see `_lock`)."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(update(ClockAlert).where(false()).values(kind=ClockAlert.kind))


def _run(step: Step, pending: Pending, now: datetime, report: TickReport) -> None:
    kind = f"failed_{step.name}"
    db.session.rollback()  # each step in a transaction of its own
    try:
        tender = _lock(pending.tender_id)
        if tender is not None and is_suspended(tender.id):
            # Suspended by the supervision authority: its clock stands still.
            db.session.rollback()
            return
        done = tender is not None and step.perform(tender, pending.due_at, now, pending.key)
        if done:
            append_event(
                "clock.step",
                object_type="tender",
                object_id=pending.tender_id,
                centre_id=pending.centre_id,
                data={
                    "step": step.name,
                    "due_at": pending.due_at.isoformat(),
                    "ran_at": now.isoformat(),
                    **({"key": pending.key} if pending.key else {}),
                },
            )
        db.session.commit()
    except IntegrityError:
        # Another tick inserted the same guard row first: it performed the step.
        db.session.rollback()
        return
    except Exception as error:  # a failing step must not stop the others
        db.session.rollback()
        log.exception("clock step %s of tender %s failed", step.name, pending.tender_id)
        report.failed.append((step.name, pending.tender_id))
        _begin_write()
        _raise(kind, pending, now, report, detail=f"{type(error).__name__}: {error}"[:500])
        db.session.commit()
        return
    if done:
        report.performed.append((step.name, pending.tender_id))
        # The seal is due at deadline + grace; it is late a minute after the deadline.
        late_at = pending.due_at - bid_ops.sealing_grace() + _sealing_late_after()
        if step.name == "seal" and now > late_at:
            # Sealed late (the clock was down): the lateness stays on record, resolved.
            _begin_write()
            late = Pending(pending.tender_id, pending.centre_id, late_at)
            _raise("sealing_late", late, now, report, detail=f"sealed at {now.isoformat()}")
            _resolve("sealing_late", pending.tender_id, pending.centre_id, now, report)
            db.session.commit()
    _begin_write()
    if _resolve(kind, pending.tender_id, pending.centre_id, now, report):
        db.session.commit()
    else:
        db.session.rollback()


def _raise(
    kind: str, pending: Pending, now: datetime, report: TickReport, detail: str = ""
) -> None:
    """Raise the alert once; a failure raised again counts one more attempt."""
    alert = db.session.scalar(
        select(ClockAlert)
        .where(ClockAlert.kind == kind, ClockAlert.tender_id == pending.tender_id)
        .with_for_update()
    )
    if alert is not None and alert.resolved_at is None:
        if kind.startswith("failed_"):
            alert.attempts += 1
            alert.detail = detail
        return
    try:
        with db.session.begin_nested():
            if alert is None:
                alert = ClockAlert(
                    kind=kind,
                    tender_id=pending.tender_id,
                    centre_id=pending.centre_id,
                    due_at=pending.due_at,
                    raised_at=now,
                    attempts=1 if kind.startswith("failed_") else 0,
                    detail=detail,
                )
                db.session.add(alert)
            else:  # raised before, resolved, late again: the same alert reopens
                alert.resolved_at = None
                alert.raised_at = now
                alert.due_at = pending.due_at
                alert.attempts = 1 if kind.startswith("failed_") else 0
                alert.detail = detail
    except IntegrityError:
        return  # another tick raised it
    append_event(
        "clock.alert_raised",
        object_type="tender",
        object_id=pending.tender_id,
        centre_id=pending.centre_id,
        data={"kind": kind, "due_at": pending.due_at.isoformat(), "at": now.isoformat()},
    )
    report.raised.append((kind, pending.tender_id))


def _resolve(kind: str, tender_id: int, centre_id: int, now: datetime, report: TickReport) -> bool:
    """Resolve the open alert, if any (a conditional UPDATE: resolved once)."""
    result = db.session.execute(
        update(ClockAlert)
        .where(
            ClockAlert.kind == kind,
            ClockAlert.tender_id == tender_id,
            ClockAlert.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    if result.rowcount != 1:
        return False
    append_event(
        "clock.alert_resolved",
        object_type="tender",
        object_id=tender_id,
        centre_id=centre_id,
        data={"kind": kind, "at": now.isoformat()},
    )
    report.resolved.append((kind, tender_id))
    return True


def _watch(now: datetime, report: TickReport) -> None:
    for kind, watch in WATCHES.items():
        db.session.rollback()
        _begin_write()
        pending = {p.tender_id: p for p in watch(now)}
        # A suspended tender is neither late nor on time: its alerts stay as they are.
        suspended = suspended_tender_ids()
        for item in pending.values():
            if item.due_at <= now and item.tender_id not in suspended:
                _raise(kind, item, now, report)
        open_alerts = db.session.execute(
            select(ClockAlert.tender_id, ClockAlert.centre_id).where(
                ClockAlert.kind == kind, ClockAlert.resolved_at.is_(None)
            )
        ).all()
        for tender_id, centre_id in open_alerts:
            if tender_id not in pending and tender_id not in suspended:
                _resolve(kind, tender_id, centre_id, now, report)
        db.session.commit()


# --- reading -------------------------------------------------------------------------------


def open_alerts(centre_ids: Iterable[int] | None = None, include_resolved: bool = False):
    """Alerts, newest first; `centre_ids` None means every centre."""
    query = select(ClockAlert).order_by(ClockAlert.raised_at.desc(), ClockAlert.id.desc())
    if centre_ids is not None:
        query = query.where(ClockAlert.centre_id.in_(list(centre_ids)))
    if not include_resolved:
        query = query.where(ClockAlert.resolved_at.is_(None))
    return query


def alert_title(kind: str) -> str:
    return str(ALERT_TITLES.get(kind, kind))


__all__ = ["STEPS", "WATCHES", "Pending", "TickReport", "alert_title", "open_alerts", "tick"]
