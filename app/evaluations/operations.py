"""Operations of the evaluation: the review stage, blind technical scoring, unblinding and
finalising.

Every function that changes something takes the acting user, checks access first (staff
through `require`; the chair through `require_chair` / `_chair`; experts through `_seat`, a
member of the tender's panel who may see it, else 404), flushes, audits and never commits.

Review (`start_evaluation`, the chair's `overrule`, `record_check`, `decide_anonymity`,
`request_justification`, `decide_justification`, `confirm_review`; the bidder's
`submit_justification`): every chair action re-runs the computation and stores it in
`Evaluation.scoring_json` (the review file has no technical scores; blind scoring replaces
it at unblinding).

Blind scoring: experts only ever address a bid by its random technical code; nothing here
returns a bid id, a bidder, a price or an evaluated-bid row id to an expert. Finalising
sends `evaluation_finalised` (the records stage makes the signed evaluation record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.formatting import moment_text
from app.core.types import utcnow
from app.evaluations import scoring_file
from app.evaluations.models import (
    Evaluation,
    EvaluationStage,
    LowPriceStatus,
    ScoreSheet,
    TechnicalScore,
)
from app.evaluations.queries import (
    READABLE_STAGES,
    PanelScores,
    Results,
    all_locked,
    bids_by_code,
    evaluated_bids,
    evaluated_for_bid,
    evaluated_with_code,
    evaluation_of,
    flagged_low_bids,
    identities,
    is_chair,
    justification_days,
    lot_draw_order,
    mapping_digest,
    needs_lot_draw,
    open_checks,
    open_low_price_questions,
    open_outliers,
    own_evaluated_bid,
    panel_data,
    panel_experts,
    panel_sheets,
    results_of,
    sheet_of,
    sheets_by_user,
)
from app.evaluations.scoring_file import Criterion, criteria_of, expert_id, outlier_pct_of
from app.evaluations.signals import evaluation_finalised
from app.extensions import db
from app.opening.models import AnonymityDecision, EvaluatedBid
from app.opening.parts import record_evaluated_bid
from app.panels.models import PanelDraw, PanelMember
from app.panels.operations import may_see_tender, members_of
from app.permissions import Permission, PermissionDenied, require
from app.tenders.documents import Upload, store_attachments
from app.tenders.models import Tender, TenderStatus
from app.tenders.notify import notify_users
from app.tenders.suspension import refuse_if_suspended
from evaluation.decimals import is_decimal_string
from evaluation.technical import is_extreme, reason_flags, score_problem

MAX_REASON = 4000
MAX_JUSTIFICATION = 20000
MAX_JUSTIFICATION_FILES = 10


# --- the review ----------------------------------------------------------------------------


def _reason(reason: str | None, what=None) -> str:
    text = (reason or "").strip()
    if not text:
        raise OperationError(what or _l("Write the reason."), code="no_reason")
    if len(text) > MAX_REASON:
        raise OperationError(
            _l("The reason is too long (at most %(n)d characters).", n=MAX_REASON),
            code="reason_too_long",
        )
    return text


def _audit(action: str, actor: User | None, tender: Tender, **data) -> None:
    append_event(
        action,
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data=data,
    )


def _ensure_evaluated_bids(tender: Tender) -> None:
    """An EvaluatedBid for every opened line (tenders opened before parts were kept)."""
    rows = scoring_file.opened_bids(tender)
    taken = {row.evaluated.code for row in rows if row.evaluated is not None}
    for row in rows:
        if row.evaluated is None:
            record_evaluated_bid(tender.id, row.line.bid_id, None, taken)
    db.session.flush()


def start_evaluation(actor: User, tender: Tender, chair: User | None = None) -> Evaluation:
    """Staff start the evaluation of an opened tender whose panel is complete."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    if evaluation_of(tender) is not None:
        raise Conflict(_l("The evaluation of this tender has already started."), "started")
    if tender.status != TenderStatus.OPENED:
        raise Conflict(_l("The evaluation starts once the bids are opened."), code="not_opened")
    draw = db.session.scalar(select(PanelDraw).where(PanelDraw.tender_id == tender.id))
    if draw is None:
        raise Conflict(_l("Draw the panel before starting the evaluation."), code="no_panel")
    experts = panel_experts(tender)
    if len(experts) != draw.size or draw.size < 3 or draw.size % 2 == 0:
        raise Conflict(
            _l(
                "The panel is not complete: %(ready)d of %(size)d members have accepted and "
                "declared no conflict (an odd number, at least 3, is needed).",
                ready=len(experts),
                size=draw.size,
            ),
            code="panel_incomplete",
        )
    if chair is None:
        chair_member = experts[0]
    else:
        chair_member = next((m for m in experts if m.user_id == chair.id), None)
        if chair_member is None:
            raise OperationError(
                _l("The chair must be a member of the panel who declared no conflict."),
                code="chair_not_member",
            )
    _ensure_evaluated_bids(tender)
    tender.status = TenderStatus.EVALUATING
    current = Evaluation(
        tender_id=tender.id,
        stage=EvaluationStage.REVIEW,
        round=1,
        chair_id=chair_member.user_id,
        started_at=utcnow(),
    )
    db.session.add(current)
    db.session.flush()
    input_sha256 = scoring_file.store_review(tender, current)
    _audit(
        "evaluation.started",
        actor,
        tender,
        chair=chair_member.user_id,
        members=[m.user_id for m in experts],
        input_sha256=input_sha256,
    )
    return current


def require_chair(actor: User, tender: Tender) -> Evaluation:
    """The access check of the chair's review actions (and the stage)."""
    if not is_chair(actor, tender):
        raise PermissionDenied()
    current = evaluation_of(tender)
    if current.stage != EvaluationStage.REVIEW:
        raise Conflict(_l("The review of this evaluation is closed."), code="not_review")
    return current


def _evaluated_by_bid(tender: Tender, bid_id: int) -> EvaluatedBid:
    found = evaluated_for_bid(tender, bid_id)
    if found is None:
        raise OperationError(_l("There is no such bid in this evaluation."), "not_found", 404)
    return found


def _after_change(tender: Tender, current: Evaluation) -> str:
    """Score the review file again and store it; its input hash."""
    return scoring_file.store_review(tender, current)


def overrule(
    actor: User, tender: Tender, bid_id: int, compliant: bool | None, reason: str
) -> EvaluatedBid:
    """The chair overrules the automatic compliance verdict of a bid (None: withdraws the
    overrule), with a written reason; the computation runs again."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    evaluated.override_compliant = compliant
    evaluated.override_reason = text if compliant is not None else ""
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.compliance_overruled",
        actor,
        tender,
        bid=bid_id,
        compliant=compliant,
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def record_check(
    actor: User, tender: Tender, bid_id: int, check: str, passed: bool, reason: str
) -> EvaluatedBid:
    """The chair records a required check of the template for a bid."""
    current = require_chair(actor, tender)
    if check not in scoring_file.manual_checks(tender):
        raise OperationError(
            _l("This check is not one the panel records for this tender."), code="bad_check"
        )
    text = _reason(reason, _l("Write the reason for the check's result."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    checks = dict(evaluated.checks or {})
    checks[check] = {
        "passed": bool(passed),
        "reason": text,
        "by": actor.id,
        "at": utcnow().isoformat(),
    }
    evaluated.checks = checks
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.check_recorded",
        actor,
        tender,
        bid=bid_id,
        check=check,
        passed=bool(passed),
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def _evaluated_by_code(tender: Tender, code: str) -> EvaluatedBid:
    found = evaluated_with_code(tender, code)
    if found is None:
        raise OperationError(_l("There is no such technical code."), "not_found", 404)
    return found


def decide_anonymity(
    actor: User, tender: Tender, code: str, accepted: bool, reason: str
) -> EvaluatedBid:
    """The chair decides an anonymity question (on the code page: no names, no prices).
    Rejected: the technical part breaks the dark-bid rule and the bid is non-compliant."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = _evaluated_by_code(tender, code)
    if evaluated.anonymity_decision != AnonymityDecision.PENDING:
        raise Conflict(_l("This anonymity question is already decided."), code="decided")
    evaluated.anonymity_decision = (
        AnonymityDecision.ACCEPTED if accepted else AnonymityDecision.REJECTED
    )
    evaluated.anonymity_reason = text
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.anonymity_decided",
        actor,
        tender,
        code=code,
        accepted=bool(accepted),
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def request_justification(
    actor: User, tender: Tender, bid_id: int, days: int | None = None, link: str = ""
) -> EvaluatedBid:
    """The chair asks the bidder of a flagged abnormally low price to justify it within a
    window (default `LOW_PRICE_JUSTIFICATION_DAYS`, 3 days). The bidder is notified."""
    require_chair(actor, tender)
    days = justification_days() if days is None else days
    if not 1 <= days <= 30:
        raise OperationError(_l("The window is between 1 and 30 days."), code="bad_window")
    evaluated = _evaluated_by_bid(tender, bid_id)
    if evaluated.low_price_status != LowPriceStatus.NONE:
        raise Conflict(_l("A justification was already requested."), code="requested")
    company = db.session.get(Company, db.session.get(Bid, bid_id).company_id)
    if bid_id not in flagged_low_bids(tender):
        raise Conflict(_l("This bid's price is not flagged as abnormally low."), "not_flagged")
    due = utcnow() + timedelta(days=days)
    evaluated.low_price_status = LowPriceStatus.REQUESTED
    evaluated.low_price_due_at = due
    _notify_bidder(tender, company, due, link)
    db.session.flush()
    _audit(
        "evaluation.justification_requested",
        actor,
        tender,
        bid=bid_id,
        due_at=due.isoformat(),
    )
    return evaluated


def _notify_bidder(tender: Tender, company: Company, due: datetime, link: str) -> None:
    """An in-app notification and an e-mail to each bidder account of the company."""

    when = due.strftime("%Y-%m-%d %H:%M")
    users = db.session.scalars(
        select(User).where(User.company_id == company.id, User.role == Role.BIDDER)
    )
    subject = _l(
        "Justify your price for %(reference)s by %(due)s UTC", reference=tender.reference, due=when
    )
    notify_users(users, tender, subject, "evaluation_justification", link, due=when)


MAX_JUSTIFICATION_FILES = 10


def submit_justification(
    actor: User, tender: Tender, text: str, uploads: list[Upload] = ()
) -> EvaluatedBid:
    """The bidder's written justification of its price, with optional attachments, before
    the window ends. A late or refused submission stores nothing."""
    require(actor, Permission.TAKE_PART)
    evaluated = own_evaluated_bid(actor, tender)
    if evaluated is None or evaluated.low_price_status == LowPriceStatus.NONE:
        raise OperationError(_l("No justification of your price was requested."), "not_found", 404)
    if evaluated.low_price_status != LowPriceStatus.REQUESTED:
        raise Conflict(_l("Your justification was already submitted."), code="submitted")
    if utcnow() > evaluated.low_price_due_at:
        raise Conflict(
            _l(
                "The time to justify your price ended on %(due)s: nothing was stored.",
                due=moment_text(evaluated.low_price_due_at, "long", tender.centre),
            ),
            code="late",
        )
    body = (text or "").strip()
    if not body:
        raise OperationError(_l("Write your justification."), code="no_text")
    if len(body) > MAX_JUSTIFICATION:
        raise OperationError(
            _l("The justification is too long (at most %(n)d characters).", n=MAX_JUSTIFICATION),
            code="too_long",
        )
    attachments = store_attachments(list(uploads), max_files=MAX_JUSTIFICATION_FILES)
    evaluated.low_price_justification = body
    evaluated.low_price_attachments = attachments
    evaluated.low_price_submitted_at = utcnow()
    evaluated.low_price_status = LowPriceStatus.SUBMITTED
    db.session.flush()
    _audit(
        "evaluation.justification_submitted",
        actor,
        tender,
        bid=evaluated.bid_id,
        text_sha256=hashlib.sha256(body.encode()).hexdigest(),
        attachments=[a["sha256"] for a in attachments],
    )
    return evaluated


def decide_justification(
    actor: User, tender: Tender, bid_id: int, accepted: bool, reason: str
) -> EvaluatedBid:
    """The chair accepts or rejects the price justification (rejected, or unanswered when
    the window has ended: the bid is non-compliant, as an overrule with this reason)."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    status = evaluated.low_price_status
    late = (
        status == LowPriceStatus.REQUESTED
        and evaluated.low_price_due_at is not None
        and utcnow() > evaluated.low_price_due_at
    )
    if not (status == LowPriceStatus.SUBMITTED or late):
        raise Conflict(
            _l("Wait for the bidder's justification or the end of its window."),
            code="not_submitted",
        )
    evaluated.low_price_reason = text
    if accepted:
        evaluated.low_price_status = LowPriceStatus.ACCEPTED
    else:
        evaluated.low_price_status = LowPriceStatus.REJECTED
        evaluated.override_compliant = False
        evaluated.override_reason = text
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.justification_decided",
        actor,
        tender,
        bid=bid_id,
        accepted=bool(accepted),
        answered=status == LowPriceStatus.SUBMITTED,
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def confirm_review(actor: User, tender: Tender) -> Evaluation:
    """The chair confirms the review: stage SCORING. Refused while a question is open."""
    current = require_chair(actor, tender)
    pending = [
        e.code for e in evaluated_bids(tender) if e.anonymity_decision == AnonymityDecision.PENDING
    ]
    if pending:
        raise Conflict(
            _l("Decide the anonymity questions first (%(n)d open).", n=len(pending)),
            code="anonymity_open",
        )
    unrecorded = open_checks(tender)
    if unrecorded:
        raise Conflict(
            _l("Record every required check first (%(n)d bid(s) open).", n=len(unrecorded)),
            code="checks_open",
        )
    low = open_low_price_questions(tender)
    if low:
        raise Conflict(
            _l("Settle the abnormally low prices first (%(n)d open).", n=len(low)),
            code="low_price_open",
        )
    now = utcnow()
    current.stage = EvaluationStage.SCORING
    current.review_confirmed_at = now
    current.review_confirmed_by_id = actor.id
    sha = _after_change(tender, current)
    _audit("evaluation.review_confirmed", actor, tender, input_sha256=sha)
    return current


# --- blind technical scoring ---------------------------------------------------------------


def _not_found() -> OperationError:
    return OperationError(_l("There is no such score sheet."), code="not_found", status=404)


def _evaluation(tender: Tender, stages: Iterable[str]) -> Evaluation:
    evaluation = evaluation_of(tender)
    if evaluation is None or evaluation.stage not in set(stages):
        if evaluation is None or evaluation.stage == EvaluationStage.REVIEW:
            # Before scoring opens a panel member sees nothing of the technical parts.
            raise _not_found()
        raise Conflict(_l("This is not possible at this stage of the evaluation."), code="stage")
    return evaluation


def _seat(actor: User, tender: Tender) -> PanelMember:
    """The access check of every expert function: a member of this tender's panel who
    accepted and declared no conflict (404 for everyone else, so nothing is confirmed)."""
    if actor is None or getattr(actor, "role", None) != Role.EXPERT:
        raise _not_found()
    if not may_see_tender(actor, tender):
        raise _not_found()
    return next(m for m in members_of(tender) if m.user_id == actor.id)


def _chair(actor: User, tender: Tender) -> PanelMember:
    member = _seat(actor, tender)
    refuse_if_suspended(tender)
    if not is_chair(actor, tender):
        raise OperationError(
            _l("Only the chair of the panel can do this."), code="not_chair", status=403
        )
    return member


@dataclass
class SheetBid:
    code: str
    has_document: bool
    filled: int
    total: int
    scores: dict[str, TechnicalScore] = field(default_factory=dict)


@dataclass
class SheetView:
    tender: Tender
    evaluation: Evaluation
    member: PanelMember
    sheet: ScoreSheet | None
    criteria: list[Criterion]
    bids: list[SheetBid]
    all_locked: bool

    @property
    def locked(self) -> bool:
        return self.sheet is not None and self.sheet.locked_at is not None

    @property
    def filled(self) -> int:
        return sum(b.filled for b in self.bids)

    @property
    def total(self) -> int:
        return sum(b.total for b in self.bids)

    def bid(self, code: str) -> SheetBid:
        for b in self.bids:
            if b.code == code:
                return b
        raise OperationError(_l("There is no bid with this code."), code="not_found", status=404)

    def title(self, key: str) -> str:
        return next((c.title for c in self.criteria if c.key == key), key)

    def outliers(self) -> list[tuple[str, TechnicalScore]]:
        return [(b.code, s) for b in self.bids for s in b.scores.values() if s.outlier]


def my_sheet(actor: User, tender: Tender) -> SheetView:
    """The actor's own sheet: bids by code only, the criteria and the actor's scores."""
    member = _seat(actor, tender)
    evaluation = _evaluation(tender, READABLE_STAGES)
    criteria = criteria_of(tender)
    sheet = sheet_of(actor, tender)
    own = {}
    if sheet is not None:
        own = {(s.evaluated_bid_id, s.criterion): s for s in sheet.scores}
    bids = []
    for row in bids_by_code(tender):
        scores = {c.key: own[(row.id, c.key)] for c in criteria if (row.id, c.key) in own}
        bids.append(
            SheetBid(row.code, row.technical_sha256 is not None, len(scores), len(criteria), scores)
        )
    return SheetView(tender, evaluation, member, sheet, criteria, bids, all_locked(tender))


def technical_part(actor: User, tender: Tender, code: str) -> EvaluatedBid:
    """The evaluated bid behind `code`, for serving its stripped technical part: panel
    members only, from the scoring stage on."""
    _seat(actor, tender)
    _evaluation(tender, READABLE_STAGES)
    row = next((b for b in evaluated_bids(tender) if b.code == code), None)
    if row is None or row.technical_sha256 is None:
        raise OperationError(
            _l("There is no document under this code."), code="not_found", status=404
        )
    return row


@dataclass(frozen=True)
class ScoreEntry:
    """One field of the sheet as typed: an empty score clears a draft score."""

    code: str
    criterion: str
    score: str
    reason: str = ""


class ScoresRefused(OperationError):
    """Some entries are refused; `problems` maps (code, criterion) to a message. Nothing
    of the batch is stored."""

    def __init__(self, problems: dict[tuple[str, str], object]):
        first = next(iter(problems.values()))
        super().__init__(first, code="invalid_score", status=400)
        self.problems = problems

    def detail(self) -> dict[str, Any]:
        """A message per refused field."""
        return {
            "detail": [
                {"code": code, "criterion": criterion, "message": str(message)}
                for (code, criterion), message in self.problems.items()
            ]
        }


def check_score(text: str, criterion: Criterion) -> Decimal:
    """The score typed for `criterion` as a Decimal, or OperationError saying why not."""
    cleaned = text.strip().replace(",", ".")
    value = Decimal(cleaned) if is_decimal_string(cleaned) else None
    if value is None or score_problem(value, criterion.technical()) is not None:
        raise OperationError(
            _l(
                "%(criterion)s: give a score from 0 to %(max)s in steps of %(step)s.",
                criterion=criterion.title,
                max=_plain(criterion.max_points),
                step=_plain(criterion.step),
            ),
            code="invalid_score",
        )
    return value


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def needs_reason(value: Decimal, criterion: Criterion) -> bool:
    return is_extreme(value, criterion.technical())


def save_scores(actor: User, tender: Tender, entries: Sequence[ScoreEntry]) -> ScoreSheet:
    """Save draft scores (partial sheets allowed). Every entry is checked first; one bad
    entry refuses the whole batch with a message per field, and nothing is stored."""
    member = _seat(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    sheet = sheet_of(actor, tender)
    if sheet is not None and sheet.locked_at is not None:
        raise Conflict(
            _l("Your sheet is locked. Only the chair can reopen it."), code="sheet_locked"
        )
    criteria = {c.key: c for c in criteria_of(tender)}
    rows = {b.code: b for b in evaluated_bids(tender)}
    problems: dict[tuple[str, str], object] = {}
    checked: list[tuple[EvaluatedBid, Criterion, str | None, str]] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        where = (entry.code, entry.criterion)
        row, criterion = rows.get(entry.code), criteria.get(entry.criterion)
        if row is None or criterion is None:
            problems[where] = _l("There is no such bid or criterion on your sheet.")
            continue
        if where in seen:
            problems[where] = _l("%(criterion)s is given twice.", criterion=criterion.title)
            continue
        seen.add(where)
        reason = (entry.reason or "").strip()
        if not entry.score.strip():
            checked.append((row, criterion, None, reason))
            continue
        try:
            value = check_score(entry.score, criterion)
        except OperationError as error:
            problems[where] = error.message
            continue
        if needs_reason(value, criterion) and not reason:
            problems[where] = _l(
                "%(criterion)s: a score of %(score)s needs a written reason.",
                criterion=criterion.title,
                score=_plain(value),
            )
            continue
        checked.append((row, criterion, entry.score.strip().replace(",", "."), reason))
    if problems:
        raise ScoresRefused(problems)
    if sheet is None:
        sheet = ScoreSheet(tender_id=tender.id, user_id=actor.id)
        db.session.add(sheet)
        db.session.flush()
    existing = {(s.evaluated_bid_id, s.criterion): s for s in sheet.scores}
    changed = 0
    for row, criterion, text, reason in checked:
        score = existing.get((row.id, criterion.key))
        if text is None:
            if score is not None:
                sheet.scores.remove(score)
                changed += 1
            continue
        if score is None:
            sheet.scores.append(
                TechnicalScore(
                    evaluated_bid_id=row.id, criterion=criterion.key, score=text, reason=reason
                )
            )
            changed += 1
        elif score.score != text or score.reason != reason:
            if Decimal(score.score) != Decimal(text):
                # The outlier reason justified the old value: a new score needs its own.
                score.outlier, score.outlier_reason = False, ""
            score.score, score.reason = text, reason
            changed += 1
    db.session.flush()
    append_event(
        "scoring.draft_saved",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"seat": member.position, "changed": changed, "filled": len(sheet.scores)},
    )
    return sheet


def sheet_digest(sheet: ScoreSheet, codes: Mapping[int, str]) -> str:
    """SHA-256 of the sheet's content by code (what was locked), for the audit log."""
    content = sorted(
        [codes[s.evaluated_bid_id], s.criterion, s.score, s.reason] for s in sheet.scores
    )
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def lock_sheet(actor: User, tender: Tender) -> ScoreSheet:
    """Submit and lock: every criterion of every bid scored, a reason for each 0 and max.
    When the last sheet locks, the outliers are flagged."""
    member = _seat(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    sheet = sheet_of(actor, tender)
    if sheet is not None and sheet.locked_at is not None:
        raise Conflict(_l("Your sheet is already locked."), code="sheet_locked")
    criteria = criteria_of(tender)
    rows = bids_by_code(tender)
    scores = {(s.evaluated_bid_id, s.criterion): s for s in (sheet.scores if sheet else [])}
    missing = [
        f"{row.code} · {c.title}" for row in rows for c in criteria if (row.id, c.key) not in scores
    ]
    if missing:
        raise OperationError(
            _l(
                "Score every criterion of every bid before locking. Missing: %(missing)s.",
                missing=", ".join(missing[:10]) + (" …" if len(missing) > 10 else ""),
            ),
            code="incomplete",
        )
    by_key = {c.key: c for c in criteria}
    unreasoned = [
        f"{row.code} · {by_key[s.criterion].title}"
        for row in rows
        for s in (scores[(row.id, c.key)] for c in criteria)
        if needs_reason(Decimal(s.score), by_key[s.criterion]) and not s.reason.strip()
    ]
    if unreasoned:
        raise OperationError(
            _l(
                "Scores at 0 or at the maximum need a written reason: %(missing)s.",
                missing=", ".join(unreasoned),
            ),
            code="reason_missing",
        )
    sheet.locked_at = utcnow()
    db.session.flush()
    append_event(
        "scoring.sheet_locked",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "seat": member.position,
            "sheet_sha256": sheet_digest(sheet, {r.id: r.code for r in rows}),
            "reopened_count": sheet.reopened_count,
        },
    )
    refresh_outliers(tender, evaluation_of(tender))
    return sheet


def flag_outliers(tender: Tender) -> int:
    """Mark every score more than the outlier percentage of the criterion's maximum away
    from the panel mean for that criterion and bid (the library's `outlier_score` flags).
    Scores no longer outliers lose their flag and reason. Returns the number flagged."""
    criteria = criteria_of(tender)
    pct = outlier_pct_of(tender)
    panel = panel_sheets(tender)
    flagged = 0
    for row in evaluated_bids(tender):
        by_expert: dict[str, dict[str, TechnicalScore]] = {}
        for member, sheet in panel:
            by_expert[expert_id(member)] = {
                s.criterion: s for s in sheet.scores if s.evaluated_bid_id == row.id
            }
        values = {
            e: {k: Decimal(s.score) for k, s in scores.items()} for e, scores in by_expert.items()
        }
        outliers = {
            (f.params["expert"], f.params["criterion"])
            for f in reason_flags(row.code, values, [c.technical() for c in criteria], pct)
            if f.code == "outlier_score"
        }
        for expert, scores in by_expert.items():
            for key, score in scores.items():
                score.outlier = (expert, key) in outliers
                if not score.outlier:
                    score.outlier_reason = ""
                flagged += score.outlier
    db.session.flush()
    return flagged


def refresh_outliers(tender: Tender, evaluation: Evaluation | None) -> None:
    """Flags follow the counted sheets: when every sheet is locked (the last lock, or a
    member removed for a conflict after the others locked), flag them."""
    if (
        evaluation is not None
        and evaluation.stage == EvaluationStage.SCORING
        and all_locked(tender)
    ):
        flag_outliers(tender)


def follow_vacated_seat(tender: Tender, member: PanelMember, **_: object) -> None:
    """Receiver of the panel's `seat_vacated`: the member's sheet no longer counts, so the
    others may now all be locked (the outliers are flagged then)."""
    refresh_outliers(tender, evaluation_of(tender))


def give_outlier_reason(
    actor: User, tender: Tender, code: str, criterion: str, reason: str
) -> TechnicalScore:
    """The author's written reason for a flagged score; the score itself does not change."""
    member = _seat(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    sheet = sheet_of(actor, tender)
    row = next((b for b in evaluated_bids(tender) if b.code == code), None)
    score = None
    if sheet is not None and row is not None:
        score = next(
            (s for s in sheet.scores if s.evaluated_bid_id == row.id and s.criterion == criterion),
            None,
        )
    if score is None or not score.outlier or sheet.locked_at is None:
        raise Conflict(_l("This score is not flagged as an outlier."), code="not_outlier")
    if not reason.strip():
        raise OperationError(_l("Write the reason for this score."), code="no_reason")
    score.outlier_reason = reason.strip()
    db.session.flush()
    append_event(
        "scoring.outlier_reason",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"seat": member.position, "code": code, "criterion": criterion},
    )
    return score


@dataclass
class MemberProgress:
    member: PanelMember
    filled: int
    total: int
    locked_at: object
    reopened_count: int
    outliers: int
    outliers_open: int


def progress(actor: User, tender: Tender) -> list[MemberProgress]:
    """How far each member is: counts and lock state, never the scores themselves."""
    _chair(actor, tender)
    _evaluation(tender, READABLE_STAGES)
    return _progress_rows(tender)


def scoring_progress(actor: User, tender: Tender) -> list[MemberProgress]:
    """The same progress for the centre's staff, supervisors and administrators (counts and
    lock state only, never scores), so they can follow the scoring."""
    require(actor, Permission.VIEW_TENDERS, centre_id=tender.centre_id)
    _evaluation(tender, READABLE_STAGES)
    return _progress_rows(tender)


def _progress_rows(tender: Tender) -> list[MemberProgress]:
    total = len(criteria_of(tender)) * len(evaluated_bids(tender))
    sheets = sheets_by_user(tender)
    out = []
    for m in panel_experts(tender):
        sheet = sheets.get(m.user_id)
        scores = sheet.scores if sheet else []
        out.append(
            MemberProgress(
                m,
                len(scores),
                total,
                sheet.locked_at if sheet else None,
                sheet.reopened_count if sheet else 0,
                sum(1 for s in scores if s.outlier),
                sum(1 for s in scores if s.outlier and not s.outlier_reason.strip()),
            )
        )
    return out


def panel_scores(actor: User, tender: Tender) -> PanelScores:
    """Every member's scores by code, for the chair, once every sheet is locked."""
    _chair(actor, tender)
    _evaluation(tender, READABLE_STAGES)
    if not all_locked(tender):
        raise Conflict(
            _l("The scores are shown once every member has locked their sheet."),
            code="not_all_locked",
        )
    return panel_data(tender)


def reopen_sheet(actor: User, tender: Tender, seat: int, reason: str) -> ScoreSheet:
    """Unlock one member's sheet so they can change a score; flags are recomputed when the
    last sheet locks again."""
    chair = _chair(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    member = next((m for m in panel_experts(tender) if m.position == seat), None)
    sheet = sheet_of(member.user, tender) if member is not None else None
    if sheet is None or sheet.locked_at is None:
        raise Conflict(_l("This member's sheet is not locked."), code="not_locked")
    if not reason.strip():
        raise OperationError(_l("Give the reason for reopening the sheet."), code="no_reason")
    sheet.locked_at = None
    sheet.reopened_count += 1
    for _member, other in panel_sheets(tender):
        for s in other.scores:
            s.outlier = False  # stale until every sheet is locked again
    db.session.flush()
    append_event(
        "scoring.sheet_reopened",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "seat": member.position,
            "chair_seat": chair.position,
            "reason": reason.strip(),
            "reopened_count": sheet.reopened_count,
        },
    )
    return sheet


def draw_lots(actor: User, tender: Tender) -> Evaluation:
    """Separate the bids the tie-breaks left level among the candidates' places by a recorded,
    replayable lot draw, then recompute the ranking (one audited event)."""
    _chair(actor, tender)
    evaluation = _evaluation(tender, {EvaluationStage.UNBLINDED})
    if not needs_lot_draw(evaluation):
        raise Conflict(_l("No tie needs a lot draw."), code="no_tie")
    if evaluation.lots_json:
        return _draw_lots_per_lot(actor, tender, evaluation)
    result = json.loads(evaluation.scoring_json)["result"]
    seed = evaluation.scoring_sha256
    groups = [list(group["bids"]) for tie in result["ties"] for group in tie["needs_draw"]]
    by_bidder = {bidder: code for code, bidder, _company in identities(tender)}
    rows = {row.code: row for row in bids_by_code(tender)}
    drawn = []
    for group in groups:
        order = lot_draw_order(seed, group)
        for position, bidder in enumerate(order, start=1):
            rows[by_bidder[bidder]].lot_draw = position
        drawn.append(order)
    db.session.flush()
    scoring_file.store_final_result(tender, evaluation, panel_sheets(tender))
    append_event(
        "evaluation.lot_drawn",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"seed": seed, "groups": drawn, "scoring_sha256": evaluation.scoring_sha256},
    )
    return evaluation


def _draw_lots_per_lot(actor: User, tender: Tender, evaluation: Evaluation) -> Evaluation:
    """`draw_lots` in a tender of several lots: each lot's ties are drawn within that lot,
    seeded by that lot's scoring-file input hash; the lots and the award are recomputed."""
    lots = {lot.reference: lot for lot in scoring_file.several_lots(tender)}
    drawn = []
    for entry in json.loads(evaluation.lots_json)["lots"]:
        result = entry["scoring_file"]["result"]
        groups = [list(g["bids"]) for tie in result["ties"] for g in tie["needs_draw"]]
        if not groups:
            continue
        seed = result["input_sha256"]
        rows = {
            bidder_id(row.company): row.evaluated
            for row in scoring_file.opened_bids(tender, lots[entry["lot"]])
        }
        orders = []
        for group in groups:
            order = lot_draw_order(seed, group)
            for position, bidder in enumerate(order, start=1):
                rows[bidder].lot_draw = position
            orders.append(order)
        drawn.append({"lot": entry["lot"], "seed": seed, "groups": orders})
    db.session.flush()
    scoring_file.store_final_result(tender, evaluation, panel_sheets(tender))
    append_event(
        "evaluation.lot_drawn",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"lots": drawn, "scoring_sha256": evaluation.scoring_sha256},
    )
    return evaluation


def unblind(actor: User, tender: Tender) -> Evaluation:
    """Reveal identities in one audited event and compute the totals and ranking."""
    chair = _chair(actor, tender)
    evaluation = _evaluation(tender, {EvaluationStage.SCORING})
    if not all_locked(tender):
        raise Conflict(
            _l("Every member must lock their sheet before the identities are revealed."),
            code="not_all_locked",
        )
    refresh_outliers(tender, evaluation)
    if open_outliers(tender):
        raise Conflict(
            _l("Every flagged score needs its author's reason before the identities are revealed."),
            code="outlier_reasons",
        )
    scoring_file.store_final_result(tender, evaluation, panel_sheets(tender))
    evaluation.stage = EvaluationStage.UNBLINDED
    evaluation.unblinded_at = utcnow()
    db.session.flush()
    append_event(
        "evaluation.unblinded",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "chair_seat": chair.position,
            "mapping_sha256": mapping_digest(tender),
            "scoring_sha256": evaluation.scoring_sha256,
            "experts": [expert_id(m) for m, _ in panel_sheets(tender)],
        },
    )
    return evaluation


def finalise(actor: User, tender: Tender) -> Evaluation:
    """The chair finalises the unblinded result and sends `evaluation_finalised` (the
    records stage requests the signed evaluation record)."""
    chair = _chair(actor, tender)
    evaluation = _evaluation(tender, {EvaluationStage.UNBLINDED})
    if needs_lot_draw(evaluation):
        raise Conflict(
            _l("Bids are still tied for a candidate's place: draw lots before finalising."),
            code="needs_draw",
        )
    evaluation.stage = EvaluationStage.FINALISED
    evaluation.finalised_at = utcnow()
    db.session.flush()
    append_event(
        "evaluation.finalised",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"chair_seat": chair.position, "scoring_sha256": evaluation.scoring_sha256},
    )
    evaluation_finalised.send(tender, actor=actor, evaluation=evaluation)
    return evaluation


def results_for_staff(actor: User, tender: Tender) -> Results:
    """The same results for staff of the tender's centre and supervisors."""
    require(actor, Permission.VIEW_TENDERS, tender.centre_id)
    evaluation = evaluation_of(tender)
    if evaluation is None or evaluation.stage not in (
        EvaluationStage.UNBLINDED,
        EvaluationStage.FINALISED,
    ):
        raise OperationError(_l("There are no results yet."), code="not_found", status=404)
    return results_of(evaluation, tender)


def results(actor: User, tender: Tender) -> Results:
    """The ranking after unblinding: panel members (and staff of the centre, in the view)."""
    _seat(actor, tender)
    evaluation = _evaluation(tender, {EvaluationStage.UNBLINDED, EvaluationStage.FINALISED})
    return results_of(evaluation, tender)
