"""Reading an evaluation: its rows, the panel whose sheets count, the open questions of the
review, the sheets and scores by code, and the identities behind the codes. No access
checks (the operations and the access helpers make them) and no writes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.accounts.models import Role, User
from app.bids.models import Bid
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.evaluations.models import (
    Evaluation,
    EvaluationStage,
    LowPriceStatus,
    ScoreSheet,
    TechnicalScore,
)
from app.evaluations.scoring_file import (
    Criterion,
    anonymity_check,
    criteria_of,
    expert_id,
    manual_checks,
    opened_bids,
    provisional,
    required_checks,
    several_lots,
    stored_result,
)
from app.extensions import db
from app.opening.models import EvaluatedBid
from app.panels.models import MemberStatus, PanelMember
from app.panels.operations import may_see_tender
from app.tenders.models import Tender

DEFAULT_JUSTIFICATION_DAYS = 3
LOW_PRICE_CODES = ("abnormally_low_vs_mean", "abnormally_low_vs_next")
# Stages from which a panel member may read the technical parts.
READABLE_STAGES = frozenset(
    {EvaluationStage.SCORING, EvaluationStage.UNBLINDED, EvaluationStage.FINALISED}
)


# --- the evaluation and its panel ----------------------------------------------------------


def evaluation_of(tender: Tender) -> Evaluation | None:
    return db.session.get(Evaluation, tender.id)


def scoring_has_locked(tender: Tender) -> bool:
    """Technical scoring has locked: the evaluation is unblinded (or finalised)."""
    evaluation = evaluation_of(tender)
    return evaluation is not None and evaluation.stage in (
        EvaluationStage.UNBLINDED,
        EvaluationStage.FINALISED,
    )


def evaluated_bids(tender: Tender) -> list[EvaluatedBid]:
    """The tender's evaluated bids, ordered by their random code (never by bid id)."""
    return list(
        db.session.scalars(
            select(EvaluatedBid)
            .where(EvaluatedBid.tender_id == tender.id)
            .order_by(EvaluatedBid.code)
        )
    )


def panel_experts(tender: Tender) -> list[PanelMember]:
    """Members who accepted and declared no conflict, by seat: the members whose sheets
    count (members removed for a conflict are left out, and their sheets with them)."""
    return list(
        db.session.scalars(
            select(PanelMember)
            .where(
                PanelMember.tender_id == tender.id,
                PanelMember.status == MemberStatus.ACCEPTED,
                PanelMember.conflict_declared_at.is_not(None),
            )
            .order_by(PanelMember.position, PanelMember.id)
        )
    )


def is_chair(user: User, tender: Tender) -> bool:
    if not getattr(user, "is_authenticated", False) or user.role != Role.EXPERT:
        return False
    current = evaluation_of(tender)
    return current is not None and current.chair_id == user.id and may_see_tender(user, tender)


def expert_evaluations(user: User) -> list[tuple[Tender, Evaluation]]:
    """The tenders whose technical parts the expert may read now, with their evaluation."""
    members = db.session.scalars(
        select(PanelMember).where(
            PanelMember.user_id == user.id,
            PanelMember.status == MemberStatus.ACCEPTED,
            PanelMember.conflict_declared_at.is_not(None),
        )
    ).all()
    items = []
    for member in members:
        evaluation = db.session.get(Evaluation, member.tender_id)
        if evaluation is not None and evaluation.stage in READABLE_STAGES:
            items.append((db.session.get(Tender, member.tender_id), evaluation))
    return items


# --- the review ----------------------------------------------------------------------------


def review_result(tender: Tender) -> dict | None:
    """The stored scored file (or None before the evaluation started)."""
    return stored_result(evaluation_of(tender))


def open_checks(tender: Tender) -> dict[int, list[str]]:
    """Bid id → the required checks still open on it (manual unrecorded, anonymity)."""
    manual = manual_checks(tender)
    wanted = set(required_checks(tender))
    out: dict[int, list[str]] = {}
    for row in opened_bids(tender):
        evaluated = row.evaluated
        missing = [c for c in manual if c not in ((evaluated.checks if evaluated else {}) or {})]
        if "technical_part_anonymous" in wanted and anonymity_check(evaluated) is None:
            missing.append("technical_part_anonymous")
        if missing:
            out[row.line.bid_id] = missing
    return out


def low_price_flags(scored: dict) -> dict[str, list[dict]]:
    """Bidder id → its abnormally-low flags in a scored file."""
    out: dict[str, list[dict]] = {}
    for flag in scored.get("result", {}).get("flags", []):
        if flag.get("code") in LOW_PRICE_CODES:
            out.setdefault(flag["params"].get("bid", ""), []).append(flag)
    return out


def flagged_low_bids(tender: Tender, scored: dict | None = None) -> set[int]:
    """Bid ids whose price is flagged abnormally low in the provisional review file (`scored`
    when given), or, in a tender of several lots, in its own lot's provisional file."""
    if scored is not None or not several_lots(tender):
        flagged = low_price_flags(scored if scored is not None else provisional(tender))
        return {row.line.bid_id for row in opened_bids(tender) if bidder_id(row.company) in flagged}
    out: set[int] = set()
    for lot in several_lots(tender):
        flagged = low_price_flags(provisional(tender, lot))
        out.update(
            row.line.bid_id for row in opened_bids(tender, lot) if bidder_id(row.company) in flagged
        )
    return out


def open_low_price_questions(tender: Tender, scored: dict | None = None) -> list[int]:
    """Bid ids whose low-price question is open: flagged and not decided, or requested and
    not decided."""
    flagged = flagged_low_bids(tender, scored)
    decided = (LowPriceStatus.ACCEPTED, LowPriceStatus.REJECTED)
    out = []
    for row in opened_bids(tender):
        evaluated = row.evaluated
        status = evaluated.low_price_status if evaluated else LowPriceStatus.NONE
        if status in decided:
            continue
        if row.line.bid_id in flagged or status != LowPriceStatus.NONE:
            out.append(row.line.bid_id)
    return out


def evaluated_for_bid(tender: Tender, bid_id: int) -> EvaluatedBid | None:
    return db.session.scalar(
        select(EvaluatedBid).where(
            EvaluatedBid.tender_id == tender.id, EvaluatedBid.bid_id == bid_id
        )
    )


def evaluated_with_code(tender: Tender, code: str) -> EvaluatedBid | None:
    return db.session.scalar(
        select(EvaluatedBid).where(EvaluatedBid.tender_id == tender.id, EvaluatedBid.code == code)
    )


def own_evaluated_bid(actor: User, tender: Tender) -> EvaluatedBid | None:
    """The evaluated bid of the actor's company (None for anyone else)."""
    if not getattr(actor, "is_authenticated", False) or actor.company_id is None:
        return None
    return db.session.scalar(
        select(EvaluatedBid)
        .join(Bid, Bid.id == EvaluatedBid.bid_id)
        .where(EvaluatedBid.tender_id == tender.id, Bid.company_id == actor.company_id)
    )


def justification_request(actor: User, tender: Tender) -> EvaluatedBid | None:
    """The actor's evaluated bid when its price justification was requested."""
    evaluated = own_evaluated_bid(actor, tender)
    if evaluated is None or evaluated.low_price_status == LowPriceStatus.NONE:
        return None
    return evaluated


def justification_days() -> int:
    """The default window of a price justification (`LOW_PRICE_JUSTIFICATION_DAYS`)."""
    return int(current_app.config.get("LOW_PRICE_JUSTIFICATION_DAYS", DEFAULT_JUSTIFICATION_DAYS))


# --- sheets and scores ---------------------------------------------------------------------


def bids_by_code(tender: Tender) -> list[EvaluatedBid]:
    return sorted(evaluated_bids(tender), key=lambda b: b.code)


def sheet_of(user: User, tender: Tender) -> ScoreSheet | None:
    return db.session.scalar(
        select(ScoreSheet).where(ScoreSheet.tender_id == tender.id, ScoreSheet.user_id == user.id)
    )


def sheets_by_user(tender: Tender) -> dict[int, ScoreSheet]:
    """The tender's score sheets by their author's user id."""
    return {
        s.user_id: s
        for s in db.session.scalars(select(ScoreSheet).where(ScoreSheet.tender_id == tender.id))
    }


def panel_sheets(tender: Tender) -> list[tuple[PanelMember, ScoreSheet]]:
    """The counted sheets, by seat: those of the members whose sheets count."""
    sheets = sheets_by_user(tender)
    return [(m, sheets[m.user_id]) for m in panel_experts(tender) if m.user_id in sheets]


def all_locked(tender: Tender) -> bool:
    panel = panel_experts(tender)
    sheets = sheets_by_user(tender)
    return bool(panel) and all(
        m.user_id in sheets and sheets[m.user_id].locked_at is not None for m in panel
    )


def is_panel_chair(user: User, tender: Tender) -> bool:
    return getattr(user, "role", None) == Role.EXPERT and is_chair(user, tender)


@dataclass
class PanelScores:
    criteria: list[Criterion]
    experts: list[tuple[str, PanelMember]]  # ("E3", member)
    codes: list[str]
    # code -> criterion -> expert id -> TechnicalScore
    scores: dict[str, dict[str, dict[str, TechnicalScore]]]

    def values(self, code: str, criterion: str) -> dict[str, Decimal]:
        return {e: Decimal(s.score) for e, s in self.scores[code][criterion].items()}


def panel_data(tender: Tender) -> PanelScores:
    """Every counted sheet's scores by code (no access check: callers check)."""
    criteria = criteria_of(tender)
    panel = panel_sheets(tender)
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


# --- identities, lot draws and results -----------------------------------------------------


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


def mapping_digest(tender: Tender) -> str:
    """SHA-256 of the code → bidder mapping revealed at unblinding (canonical JSON)."""
    pairs = [[code, bidder] for code, bidder, _ in identities(tender)]
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def lot_draw_order(scoring_sha256: str, group: list[str]) -> list[str]:
    """The verifiable order of a tied group: by HMAC-SHA256 keyed with the hash of the scoring
    file's input (fixed before the draw, controlled by nobody alone) over each bidder id.
    Anyone can recompute it from the published record."""
    key = bytes.fromhex(scoring_sha256)
    return sorted(group, key=lambda bid: hmac.new(key, bid.encode(), hashlib.sha256).digest())


def needs_lot_draw(evaluation: Evaluation) -> bool:
    """Whether a tie needs a lot draw (in any lot of a tender of several lots)."""
    if evaluation.lots_json:
        return any(
            entry["scoring_file"]["result"]["outcome"]["status"] == "needs_draw"
            for entry in json.loads(evaluation.lots_json)["lots"]
        )
    if not evaluation.scoring_json:
        return False
    return json.loads(evaluation.scoring_json)["result"]["outcome"]["status"] == "needs_draw"


@dataclass
class ResultLine:
    rank: int | None
    code: str
    bidder: str
    company: Company
    data: dict  # the bid's part of the scored file's result


@dataclass
class LotResults:
    """One lot's results in a tender of several lots, with its winner under the award
    across lots (None: the lot has no winner)."""

    lot: str
    title: str
    document: dict  # the lot's scoring file
    lines: list[ResultLine]
    candidates: list[ResultLine]
    winner: ResultLine | None


@dataclass
class Results:
    evaluation: Evaluation
    document: dict  # the scoring file; for several lots, `Evaluation.lots_json`
    lines: list[ResultLine]
    candidates: list[ResultLine]
    lots: list[LotResults] = field(default_factory=list)  # several lots only
    award: dict | None = None  # the award across lots (several lots only)


def _ranked(
    result: dict, ids: Iterable[tuple[str, str, Company]]
) -> tuple[list[ResultLine], list[ResultLine]]:
    by_bidder = {r["id"]: r for r in result["bids"]}
    lines = [
        ResultLine(
            by_bidder.get(bidder, {}).get("rank"), code, bidder, company, by_bidder.get(bidder, {})
        )
        for code, bidder, company in ids
    ]
    lines.sort(key=lambda line: (line.rank is None, line.rank or 0, line.code))
    order = {bidder: i for i, bidder in enumerate(result["outcome"].get("candidates", []))}
    candidates = sorted((x for x in lines if x.bidder in order), key=lambda x: order[x.bidder])
    return lines, candidates[:3]


def results_of(evaluation: Evaluation, tender: Tender) -> Results:
    if evaluation.lots_json:
        return _lot_results(evaluation, tender)
    document = json.loads(evaluation.scoring_json)
    lines, candidates = _ranked(document["result"], identities(tender))
    return Results(evaluation, document, lines, candidates)


def _lot_results(evaluation: Evaluation, tender: Tender) -> Results:
    document = json.loads(evaluation.lots_json)
    lots = {lot.reference: lot for lot in tender.lots}
    lot_of_bid = dict(
        db.session.execute(select(Bid.id, Bid.lot_id).where(Bid.tender_id == tender.id)).all()
    )
    by_lot: dict[int | None, list[tuple[str, str, Company]]] = {}
    for row, identity in zip(bids_by_code(tender), identities(tender), strict=True):
        by_lot.setdefault(lot_of_bid.get(row.bid_id), []).append(identity)
    awarded = {a["lot"]: a for a in document["award"]["result"]["lots"]}
    out = []
    for entry in document["lots"]:
        lot = lots[entry["lot"]]
        lines, candidates = _ranked(entry["scoring_file"]["result"], by_lot.get(lot.id, []))
        winner_id = awarded.get(entry["lot"], {}).get("winner")
        winner = next((line for line in lines if line.bidder == winner_id), None)
        out.append(
            LotResults(entry["lot"], lot.title, entry["scoring_file"], lines, candidates, winner)
        )
    every_line = [line for lot in out for line in lot.lines]
    return Results(evaluation, document, every_line, [], out, document["award"])
