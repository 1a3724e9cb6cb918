"""Blind technical scoring: the experts' score sheets, the chair's view of progress, outlier
reasons, reopening a sheet, unblinding and finalising.

Experts only ever address a bid by its random technical code: nothing here returns a bid
id, a bidder, a price or an evaluated-bid row id to an expert. Every function that changes
something takes the acting user, checks access first, flushes, audits and never commits.

Experts hold no role permission (their reach is their seat on a panel), so the access check
of the expert functions is `_seat` (a panel member who may see the tender, else 404), as in
the panel's own expert operations; the chair's functions add `_chair`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

import evaluation as evaluation_lib
from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.evaluations import review
from app.evaluations.models import (
    EvaluatedBid,
    Evaluation,
    EvaluationStage,
    ScoreSheet,
    TechnicalScore,
)
from app.extensions import db
from app.panels.models import PanelMember
from app.panels.operations import may_see_tender, members_of
from app.permissions import Permission, require
from app.tenders.models import Tender
from evaluation.decimals import is_decimal_string
from evaluation.model import TechnicalCriterion
from evaluation.technical import reason_flags

DEFAULT_OUTLIER_PCT = Decimal(30)
# Stages from which a panel member may read the technical parts.
READABLE_STAGES = frozenset(
    {EvaluationStage.SCORING, EvaluationStage.UNBLINDED, EvaluationStage.FINALISED}
)


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    max_points: Decimal
    step: Decimal

    def technical(self) -> TechnicalCriterion:
        return TechnicalCriterion(self.key, self.max_points, self.step)


def criteria_of(tender: Tender) -> list[Criterion]:
    return [
        Criterion(
            c["key"],
            c.get("title") or c["key"],
            Decimal(str(c["max_points"])),
            Decimal(str(c["step"])),
        )
        for c in review.technical_criteria(tender)
    ]


def outlier_pct_of(tender: Tender) -> Decimal:
    """The template's `technical_outlier_pct` when it sets one, else 30 %."""
    value = review.scoring_document(tender).get("technical_outlier_pct")
    return Decimal(str(value)) if value is not None else DEFAULT_OUTLIER_PCT


def scoring_panel(tender: Tender) -> list[PanelMember]:
    """The members whose sheets count, by seat: accepted and declared no conflict. Members
    removed for a conflict are left out, and their sheets with them."""
    return review.panel_experts(tender)


# The expert's id in the scoring file: E and the seat number.
expert_id = review.expert_id


def bids_by_code(tender: Tender) -> list[EvaluatedBid]:
    return sorted(review.evaluated_bids(tender), key=lambda b: b.code)


def sheet_of(user: User, tender: Tender) -> ScoreSheet | None:
    return db.session.scalar(
        select(ScoreSheet).where(ScoreSheet.tender_id == tender.id, ScoreSheet.user_id == user.id)
    )


def _sheets(tender: Tender) -> dict[int, ScoreSheet]:
    return {
        s.user_id: s
        for s in db.session.scalars(select(ScoreSheet).where(ScoreSheet.tender_id == tender.id))
    }


def all_locked(tender: Tender) -> bool:
    panel = scoring_panel(tender)
    sheets = _sheets(tender)
    return bool(panel) and all(
        m.user_id in sheets and sheets[m.user_id].locked_at is not None for m in panel
    )


def _not_found() -> OperationError:
    return OperationError(_l("There is no such score sheet."), code="not_found", status=404)


def _evaluation(tender: Tender, stages: Iterable[str]) -> Evaluation:
    evaluation = review.evaluation_of(tender)
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
    if not review.is_chair(actor, tender):
        raise OperationError(
            _l("Only the chair of the panel can do this."), code="not_chair", status=403
        )
    return member


def is_panel_chair(user: User, tender: Tender) -> bool:
    return getattr(user, "role", None) == Role.EXPERT and review.is_chair(user, tender)


# --- the expert's sheet -------------------------------------------------------------------


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
    refresh_outliers(tender, evaluation)
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
    row = next((b for b in review.evaluated_bids(tender) if b.code == code), None)
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


def check_score(text: str, criterion: Criterion) -> Decimal:
    """The score typed for `criterion` as a Decimal, or OperationError saying why not."""
    cleaned = text.strip().replace(",", ".")
    value = Decimal(cleaned) if is_decimal_string(cleaned) else None
    if value is None or value < 0 or value > criterion.max_points or value % criterion.step != 0:
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
    return value == 0 or value == criterion.max_points


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
    rows = {b.code: b for b in review.evaluated_bids(tender)}
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
    refresh_outliers(tender, review.evaluation_of(tender))
    return sheet


# --- outliers -----------------------------------------------------------------------------


def _panel_sheets(tender: Tender) -> list[tuple[PanelMember, ScoreSheet]]:
    sheets = _sheets(tender)
    return [(m, sheets[m.user_id]) for m in scoring_panel(tender) if m.user_id in sheets]


def flag_outliers(tender: Tender) -> int:
    """Mark every score more than the outlier percentage of the criterion's maximum away
    from the panel mean for that criterion and bid (the library's `outlier_score` flags).
    Scores no longer outliers lose their flag and reason. Returns the number flagged."""
    criteria = criteria_of(tender)
    pct = outlier_pct_of(tender)
    panel = _panel_sheets(tender)
    flagged = 0
    for row in review.evaluated_bids(tender):
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


def refresh_outliers(tender: Tender, evaluation: Evaluation) -> None:
    """Flags follow the counted sheets: when every sheet is locked (the last lock, or a
    member removed for a conflict after the others locked), flag them; the caller commits."""
    if evaluation.stage == EvaluationStage.SCORING and all_locked(tender):
        flag_outliers(tender)


def give_outlier_reason(
    actor: User, tender: Tender, code: str, criterion: str, reason: str
) -> TechnicalScore:
    """The author's written reason for a flagged score; the score itself does not change."""
    member = _seat(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    sheet = sheet_of(actor, tender)
    row = next((b for b in review.evaluated_bids(tender) if b.code == code), None)
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


# --- the chair ----------------------------------------------------------------------------


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
    refresh_outliers(tender, _evaluation(tender, READABLE_STAGES))
    total = len(criteria_of(tender)) * len(review.evaluated_bids(tender))
    sheets = _sheets(tender)
    out = []
    for m in scoring_panel(tender):
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


@dataclass
class PanelScores:
    criteria: list[Criterion]
    experts: list[tuple[str, PanelMember]]  # ("E3", member)
    codes: list[str]
    # code -> criterion -> expert id -> TechnicalScore
    scores: dict[str, dict[str, dict[str, TechnicalScore]]]

    def values(self, code: str, criterion: str) -> dict[str, Decimal]:
        return {e: Decimal(s.score) for e, s in self.scores[code][criterion].items()}


def panel_scores(actor: User, tender: Tender) -> PanelScores:
    """Every member's scores by code, for the chair, once every sheet is locked."""
    _chair(actor, tender)
    evaluation = _evaluation(tender, READABLE_STAGES)
    if not all_locked(tender):
        raise Conflict(
            _l("The scores are shown once every member has locked their sheet."),
            code="not_all_locked",
        )
    refresh_outliers(tender, evaluation)
    return panel_data(tender)


def panel_data(tender: Tender) -> PanelScores:
    """Every counted sheet's scores by code (no access check: callers check)."""
    criteria = criteria_of(tender)
    panel = _panel_sheets(tender)
    rows = bids_by_code(tender)
    codes = {r.id: r.code for r in rows}
    scores: dict[str, dict[str, dict[str, TechnicalScore]]] = {
        r.code: {c.key: {} for c in criteria} for r in rows
    }
    for member, sheet in panel:
        for s in sheet.scores:
            if s.evaluated_bid_id in codes and s.criterion in scores[codes[s.evaluated_bid_id]]:
                scores[codes[s.evaluated_bid_id]][s.criterion][expert_id(member)] = s
    return PanelScores(
        criteria, [(expert_id(m), m) for m, _ in panel], [r.code for r in rows], scores
    )


def reopen_sheet(actor: User, tender: Tender, seat: int, reason: str) -> ScoreSheet:
    """Unlock one member's sheet so they can change a score; flags are recomputed when the
    last sheet locks again."""
    chair = _chair(actor, tender)
    _evaluation(tender, {EvaluationStage.SCORING})
    member = next((m for m in scoring_panel(tender) if m.position == seat), None)
    sheet = sheet_of(member.user, tender) if member is not None else None
    if sheet is None or sheet.locked_at is None:
        raise Conflict(_l("This member's sheet is not locked."), code="not_locked")
    if not reason.strip():
        raise OperationError(_l("Give the reason for reopening the sheet."), code="no_reason")
    sheet.locked_at = None
    sheet.reopened_count += 1
    for _member, other in _panel_sheets(tender):
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


def open_outliers(tender: Tender) -> list[tuple[str, str, str]]:
    """(expert id, code, criterion) of every flagged score still without a reason."""
    data = panel_data(tender)
    return [
        (e, code, key)
        for code, by_criterion in data.scores.items()
        for key, by_expert in by_criterion.items()
        for e, s in by_expert.items()
        if s.outlier and not s.outlier_reason.strip()
    ]


def mapping_digest(tender: Tender) -> str:
    """SHA-256 of the code → bidder mapping revealed at unblinding (canonical JSON)."""
    pairs = [[code, bidder] for code, bidder, _ in identities(tender)]
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def identities(tender: Tender) -> list[tuple[str, str, Company]]:
    """(code, bidder id, company) of every evaluated bid, by code. Never for experts before
    unblinding: only `unblind` and the results read it."""
    rows = bids_by_code(tender)
    bids = {
        b.id: b for b in db.session.scalars(select(Bid).where(Bid.id.in_([r.bid_id for r in rows])))
    }
    companies = {
        c.id: c
        for c in db.session.scalars(
            select(Company).where(Company.id.in_([b.company_id for b in bids.values()]))
        )
    }
    out = []
    for r in rows:
        company = companies[bids[r.bid_id].company_id]
        out.append((r.code, bidder_id(company), company))
    return out


def _reason_text(score: TechnicalScore) -> str:
    parts = [p for p in (score.reason.strip(), score.outlier_reason.strip()) if p]
    return " / ".join(parts)


def _store_final_result(tender: Tender, evaluation: Evaluation) -> dict:
    """Score the complete file (every locked sheet of the panel) and store it."""
    technical: dict[int, dict[str, dict[str, str]]] = {}
    reasons: dict[int, dict[str, dict[str, str]]] = {}
    for member, sheet in _panel_sheets(tender):
        expert = expert_id(member)
        for s in sheet.scores:
            technical.setdefault(s.evaluated_bid_id, {}).setdefault(expert, {})[s.criterion] = (
                s.score
            )
            text = _reason_text(s)
            if text:
                reasons.setdefault(s.evaluated_bid_id, {}).setdefault(expert, {})[s.criterion] = (
                    text
                )
    document = review.scoring_document(tender, technical=technical, technical_reasons=reasons)
    scored = evaluation_lib.score(document)
    evaluation.scoring_json = evaluation_lib.dumps(scored)
    evaluation.scoring_sha256 = evaluation_lib.input_sha256(scored)
    return scored


def lot_draw_order(scoring_sha256: str, group: list[str]) -> list[str]:
    """The verifiable order of a tied group: by HMAC-SHA256 keyed with the hash of the scoring
    file's input (fixed before the draw, controlled by nobody alone) over each bidder id.
    Anyone can recompute it from the published record."""
    key = bytes.fromhex(scoring_sha256)
    return sorted(group, key=lambda bid: hmac.new(key, bid.encode(), hashlib.sha256).digest())


def needs_lot_draw(evaluation: Evaluation) -> bool:
    if not evaluation.scoring_json:
        return False
    return json.loads(evaluation.scoring_json)["result"]["outcome"]["status"] == "needs_draw"


def draw_lots(actor: User, tender: Tender) -> Evaluation:
    """Separate the bids the tie-breaks left level among the candidates' places by a recorded,
    replayable lot draw, then recompute the ranking (one audited event)."""
    _chair(actor, tender)
    evaluation = _evaluation(tender, {EvaluationStage.UNBLINDED})
    if not needs_lot_draw(evaluation):
        raise Conflict(_l("No tie needs a lot draw."), code="no_tie")
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
    _store_final_result(tender, evaluation)
    append_event(
        "evaluation.lot_drawn",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"seed": seed, "groups": drawn, "scoring_sha256": evaluation.scoring_sha256},
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
    _store_final_result(tender, evaluation)
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
            "experts": [expert_id(m) for m, _ in _panel_sheets(tender)],
        },
    )
    return evaluation


def finalise(actor: User, tender: Tender) -> Evaluation:
    """The chair finalises the unblinded result; every finalise hook runs (the records
    helper's signed evaluation record among them)."""
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
    for hook in review.FINALISE_HOOKS:
        hook(actor, tender, evaluation)
    return evaluation


# --- results ------------------------------------------------------------------------------


@dataclass
class ResultLine:
    rank: int | None
    code: str
    bidder: str
    company: Company
    data: dict  # the bid's part of the scored file's result


@dataclass
class Results:
    evaluation: Evaluation
    document: dict
    lines: list[ResultLine]
    candidates: list[ResultLine]


def results_of(evaluation: Evaluation, tender: Tender) -> Results:
    document = json.loads(evaluation.scoring_json)
    result = document["result"]
    by_bidder = {r["id"]: r for r in result["bids"]}
    lines = [
        ResultLine(
            by_bidder.get(bidder, {}).get("rank"), code, bidder, company, by_bidder.get(bidder, {})
        )
        for code, bidder, company in identities(tender)
    ]
    lines.sort(key=lambda line: (line.rank is None, line.rank or 0, line.code))
    order = {bidder: i for i, bidder in enumerate(result["outcome"].get("candidates", []))}
    candidates = sorted((x for x in lines if x.bidder in order), key=lambda x: order[x.bidder])
    return Results(evaluation, document, lines, candidates[:3])


def results_for_staff(actor: User, tender: Tender) -> Results:
    """The same results for staff of the tender's centre and supervisors."""
    require(actor, Permission.VIEW_TENDERS, tender.centre_id)
    evaluation = review.evaluation_of(tender)
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
