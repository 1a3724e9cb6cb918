"""Red flags: computed from opened tenders (price screens, same-source signals) and from
history (market signals), reviewed by supervisors within their centre hierarchy.

A flag is a question for a supervisor, never a decision: nothing here changes a tender, a
bid or an evaluation. Flags are stored only after a tender's opening (same-source data, the
keyed hashes and PDF metadata, is read only then) and are shown only to supervisors and
administrators. Thresholds: `evaluation.screens`, `.sources`, `.market` (documented defaults),
overridden by the `SUPERVISION_FLAG_THRESHOLDS` setting (see the README, "Red flags").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from statistics import median
from typing import Any

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.centres.models import TradingCentre
from app.companies.models import Company
from app.core.errors import OperationError
from app.core.types import utcnow
from app.evaluations.models import ScoreSheet, TechnicalScore
from app.evaluations.scoring_file import technical_criteria
from app.extensions import db
from app.opening.models import (
    EvaluatedBid,
    LineStatus,
    OpeningLine,
    OpeningSession,
    OpeningStatus,
    TechnicalSource,
)
from app.panels.models import MemberStatus, PanelMember
from app.permissions import Permission, require
from app.results.models import NoticeKind, ResultNotice
from app.supervision.flag_models import FlagKind, FlagStatus, RedFlag
from app.tenders.models import Lot, Tender
from evaluation import market, screens, sources
from evaluation.decimals import fmt

log = logging.getLogger(__name__)

MAX_REASON = 2000
COMPARABLE_LIMIT = 200  # comparable competitions read for Cardinal R024 / R058
RESCREEN_DAYS = 30  # the nightly run screens again the tenders opened this recently
SCORE_PLACES = Decimal("0.0001")

# Translated titles of the rules (the English messages with their evidence are in
# `evaluation.messages`; evidence values are numbers, names and codes).
RULE_TITLES: dict[str, Any] = {
    "identical_prices": _l("Identical prices (Cardinal R028)"),
    "low_price_variation": _l("Low coefficient of variation"),
    "high_relative_distance": _l("Large gap before cover bids (relative distance)"),
    "high_kurtosis": _l("High kurtosis of prices"),
    "negative_skewness": _l("Negative skewness of prices"),
    "high_diffp": _l("Large margin between the two lowest prices"),
    "high_rdnor": _l("High normalised relative distance"),
    "close_margin_outlier": _l("Price close to the winning bid (Cardinal R024)"),
    "heavily_undercut_outlier": _l("Heavily undercut second bid (Cardinal R058)"),
    "equal_price_spacing": _l("Equally spaced prices"),
    "bids_near_ceiling": _l("Bids just under the ceiling price"),
    "round_number_clustering": _l("Round-number prices"),
    "identical_technical_files": _l("Identical technical files"),
    "similar_technical_texts": _l("Near-identical technical texts"),
    "same_pdf_author": _l("Same document author"),
    "same_pdf_software": _l("Same document software"),
    "same_submission_address": _l("Uploaded from the same address"),
    "same_submission_device": _l("Uploaded from the same address and browser"),
    "cover_bidding": _l("Always loses to the same winner (cover bidding)"),
    "winner_rotation": _l("Winners rotate within a group"),
    "single_bid_share": _l("High share of single-bid tenders"),
    "expert_repeated_entity": _l("Expert sits repeatedly for one procuring entity"),
    "expert_score_deviation": _l("Expert's scores deviate systematically"),
}
EVIDENCE_LABELS: dict[str, Any] = {
    "bids": _l("Bids"),
    "price": _l("Price"),
    "count": _l("Count"),
    "n": _l("Number of bids"),
    "value": _l("Value"),
    "threshold": _l("Threshold"),
    "gap": _l("Gap"),
    "tolerance": _l("Tolerance"),
    "largest_deviation": _l("Largest deviation"),
    "ceiling": _l("Ceiling price"),
    "floor": _l("From"),
    "digits": _l("Significant digits"),
    "margin": _l("Margin"),
    "q1": _l("First quartile"),
    "q3": _l("Third quartile"),
    "comparable": _l("Comparable tenders"),
    "similarity": _l("Similarity"),
    "company": _l("Company"),
    "winner": _l("Winner"),
    "losses": _l("Losses"),
    "tenders": _l("Tenders"),
    "companies": _l("Companies"),
    "competitions": _l("Competitions"),
    "subject": _l("Centre or procuring entity"),
    "kind": _l("Grouped by"),
    "single": _l("Single-bid tenders"),
    "share": _l("Share"),
    "expert": _l("Expert"),
    "entity": _l("Procuring entity"),
    "panels": _l("Panels"),
    "sheets": _l("Scores compared"),
    "mean_deviation": _l("Mean deviation (share of maximum points)"),
}
STATUS_LABELS: dict[str, Any] = {
    FlagStatus.OPEN: _l("Open"),
    FlagStatus.ACKNOWLEDGED: _l("Acknowledged"),
    FlagStatus.DISMISSED: _l("Dismissed"),
    FlagStatus.ESCALATED: _l("Escalated"),
}
KIND_LABELS: dict[str, Any] = {
    FlagKind.PRICE: _l("Price screen"),
    FlagKind.SOURCE: _l("Same source"),
    FlagKind.MARKET: _l("Market"),
}


# --- thresholds ------------------------------------------------------------------------------


def _configured(section: str) -> dict:
    config = current_app.config.get("SUPERVISION_FLAG_THRESHOLDS") or {}
    value = config.get(section) or {}
    if not isinstance(value, dict):
        raise ValueError(f"SUPERVISION_FLAG_THRESHOLDS[{section!r}] must be a mapping")
    return value


def screen_thresholds() -> screens.ScreenThresholds:
    return screens.ScreenThresholds.from_mapping(_configured("screens"))


def _plain_thresholds(cls, section: str):
    values = _configured(section)
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {section} threshold(s): {', '.join(sorted(unknown))}")
    defaults = cls()
    out = {}
    for name, value in values.items():
        kind = type(getattr(defaults, name))
        out[name] = Decimal(str(value)) if kind is Decimal else int(value)
    return cls(**out)


def source_thresholds() -> sources.SourceThresholds:
    return _plain_thresholds(sources.SourceThresholds, "sources")


def market_thresholds() -> market.MarketThresholds:
    return _plain_thresholds(market.MarketThresholds, "market")


# --- who sees what ---------------------------------------------------------------------------


def supervised_centres(user: User) -> set[int] | None:
    """The centres a supervisor oversees: their centre and every centre under it (None: all,
    for administrators and supervisors not tied to a centre)."""
    if user.role == Role.ADMIN or user.centre_id is None:
        return None
    children: dict[int | None, list[int]] = defaultdict(list)
    for centre_id, parent_id in db.session.execute(
        select(TradingCentre.id, TradingCentre.parent_id)
    ):
        children[parent_id].append(centre_id)
    seen, todo = set(), [user.centre_id]
    while todo:
        centre = todo.pop()
        if centre not in seen:
            seen.add(centre)
            todo.extend(children.get(centre, []))
    return seen


def _in_scope(query, user: User):
    scope = supervised_centres(user)
    return query if scope is None else query.where(RedFlag.centre_id.in_(scope))


def flags_query(user: User, *, status=None, kind=None, rule=None, tender_id=None, centre_id=None):
    """The flags `user` may review, filtered, highest score first."""
    require(user, Permission.REVIEW_FLAGS)
    query = _in_scope(select(RedFlag), user)
    if status:
        query = query.where(RedFlag.status == status)
    if kind:
        query = query.where(RedFlag.kind == kind)
    if rule:
        query = query.where(RedFlag.rule == rule)
    if tender_id:
        query = query.where(RedFlag.tender_id == tender_id)
    if centre_id:
        query = query.where(RedFlag.centre_id == centre_id)
    return query.order_by(RedFlag.score.desc(), RedFlag.id.desc())


def visible_flag(user: User, flag_id: int) -> RedFlag:
    """The flag, if `user` may review it (404 otherwise: its existence says nothing)."""
    require(user, Permission.REVIEW_FLAGS)
    flag = db.session.get(RedFlag, flag_id)
    scope = supervised_centres(user)
    if flag is None or (scope is not None and flag.centre_id not in scope):
        raise NotFound()
    return flag


# --- review ----------------------------------------------------------------------------------

# Dismissed is final; an escalated flag can still be dismissed once looked into.
_ALLOWED = {
    FlagStatus.OPEN: {FlagStatus.ACKNOWLEDGED, FlagStatus.DISMISSED, FlagStatus.ESCALATED},
    FlagStatus.ACKNOWLEDGED: {FlagStatus.DISMISSED, FlagStatus.ESCALATED},
    FlagStatus.ESCALATED: {FlagStatus.DISMISSED},
    FlagStatus.DISMISSED: set(),
}


def allowed_actions(flag: RedFlag) -> list[str]:
    return [
        s
        for s in (FlagStatus.ACKNOWLEDGED, FlagStatus.ESCALATED, FlagStatus.DISMISSED)
        if s in _ALLOWED[FlagStatus(flag.status)]
    ]


def review_flag(actor: User, flag: RedFlag, status: str, reason: str = "") -> RedFlag:
    """Acknowledge, dismiss (a reason is required) or escalate a flag; audited. Changes the
    flag's review only, never the tender."""
    require(actor, Permission.REVIEW_FLAGS)
    scope = supervised_centres(actor)
    if scope is not None and flag.centre_id not in scope:
        raise NotFound()
    reason = (reason or "").strip()
    if status not in (FlagStatus.ACKNOWLEDGED, FlagStatus.DISMISSED, FlagStatus.ESCALATED):
        raise OperationError(_l("Unknown review action."), code="invalid_status")
    if status == FlagStatus.DISMISSED and not reason:
        raise OperationError(_l("Give the reason for dismissing the flag."), code="reason_required")
    if len(reason) > MAX_REASON:
        raise OperationError(
            _l("The reason is too long (at most %(n)d characters).", n=MAX_REASON),
            code="reason_too_long",
        )
    if status not in _ALLOWED[FlagStatus(flag.status)]:
        raise OperationError(
            _l("This flag cannot be marked %(status)s now.", status=STATUS_LABELS[status]),
            code="flag_state",
            status=409,
        )
    flag.status = status
    flag.review_reason = reason
    flag.reviewed_by_id = actor.id
    flag.reviewed_at = utcnow()
    db.session.flush()
    # The tender is deliberately not in the event's data: a tender's audit trail may be
    # exported; the flag (and its tender) is found from the flag id by supervisors.
    append_event(
        f"flag.{status}",
        actor=actor,
        object_type="red_flag",
        object_id=flag.id,
        centre_id=flag.centre_id,
        data={"rule": flag.rule, "reason": reason},
    )
    return flag


# --- storing computed flags ------------------------------------------------------------------


def _score(value: Decimal) -> str:
    return fmt(min(Decimal(1), max(Decimal(0), value)).quantize(SCORE_PLACES))


def _store(
    raised: Iterable[tuple[str, screens.RedFlag] | tuple[str, screens.RedFlag, str]],
    *,
    kind: str,
    tender_id: int | None,
    centre_id: int | None,
    stale_prefix: str,
    competition: str = "",
) -> int:
    """Insert or update each (subject, flag) or (subject, flag, competition: the lot it is
    about); delete this prefix's unreviewed flags that were not raised again (reviewed ones
    stay, with their review). Returns how many were raised."""
    now = utcnow()
    kept: set[tuple[str, str]] = set()
    for subject, flag, *lot in raised:
        kept.add((flag.code, subject))
        row = db.session.scalar(
            select(RedFlag).where(RedFlag.rule == flag.code, RedFlag.subject == subject)
        )
        if row is None:
            row = RedFlag(
                kind=kind,
                rule=flag.code,
                subject=subject,
                tender_id=tender_id,
                centre_id=centre_id,
                competition=competition,
                status=FlagStatus.OPEN,
                review_reason="",
                raised_at=now,
            )
            db.session.add(row)
        row.competition = lot[0] if lot else competition
        row.score = _score(flag.score)
        row.threshold = flag.threshold[:64]
        row.evidence = {**dict(flag.params), "message": flag.message}
        row.updated_at = now
    for row in db.session.scalars(
        select(RedFlag).where(
            RedFlag.kind == kind,
            RedFlag.subject.startswith(stale_prefix, autoescape=True),
            RedFlag.status == FlagStatus.OPEN,
        )
    ):
        if (row.rule, row.subject) not in kept:
            db.session.delete(row)
    db.session.flush()
    return len(kept)


def _subject_key(flag: screens.RedFlag) -> str:
    p = flag.params
    for name in ("bids", "price"):
        if p.get(name):
            return f"{name}:{p[name]}"[:200]
    return ""


# --- one opened tender ------------------------------------------------------------------------


def _opened(tender: Tender) -> bool:
    session = db.session.get(OpeningSession, tender.id)
    return session is not None and session.status == OpeningStatus.COMPLETED


def _label(company: Company) -> str:
    return f"{company.name} (#{company.id})"


def _opened_prices(tender_id: int) -> list[tuple[Company, Decimal, OpeningLine]]:
    """The opened lines with a usable price, in line order (each line knows its lot)."""
    rows = db.session.execute(
        select(OpeningLine, Company)
        .join(Company, Company.id == OpeningLine.company_id)
        .where(OpeningLine.tender_id == tender_id, OpeningLine.status == LineStatus.OPENED)
        .order_by(OpeningLine.id)
    ).all()
    out = []
    for line, company in rows:
        try:
            price = Decimal(line.price) if line.price else None
        except InvalidOperation:
            price = None
        if price is not None and price.is_finite() and price > 0:
            out.append((company, price, line))
    return out


def _ceiling(tender: Tender, lot: Lot | None = None) -> Decimal | None:
    """The ceiling of the competition: the lot's in a tender divided into lots, else the
    tender's one lot's."""
    if lot is not None:
        return lot.ceiling_price
    return tender.lots[0].ceiling_price if tender.lots else None


def competitions_of(tender: Tender) -> list[tuple[Lot | None, list]]:
    """The tender's competitions with their opened (company, price, line) rows: each lot of
    a tender divided into lots (in lot order; a cancelled or failed lot has no opened line
    and so no row), else the tender itself (lot None)."""
    rows = _opened_prices(tender.id)
    if not tender.has_lots:
        return [(None, rows)]
    by_lot: dict[int | None, list] = defaultdict(list)
    for row in rows:
        by_lot[row[2].lot_id].append(row)
    return [(lot, by_lot[lot.id]) for lot in tender.lots if by_lot.get(lot.id)]


def _comparable_margins(tender: Tender) -> list[Decimal]:
    """DIFFP of the competitions (each lot of a tender divided into lots) of other opened
    tenders of the same category (the most recent tenders)."""
    others = db.session.scalars(
        select(Tender.id)
        .join(OpeningSession, OpeningSession.tender_id == Tender.id)
        .where(
            Tender.category == tender.category,
            Tender.id != tender.id,
            OpeningSession.status == OpeningStatus.COMPLETED,
        )
        .order_by(OpeningSession.completed_at.desc())
        .limit(COMPARABLE_LIMIT)
    ).all()
    margins = []
    for other in others:
        for _, rows in competitions_of(db.session.get(Tender, other)):
            prices = [price for _, price, _ in rows]
            value = screens.diffp(prices) if len(prices) >= screens.MIN_BIDS else None
            if value is not None:
                margins.append(value)
    return margins


def _source_records(tender_id: int, lot: Lot | None = None) -> list[sources.SourceRecord]:
    """The same-source traces of one competition's opened bids (``lot``: that lot's only:
    a company bidding for two lots with one proposal is not two sources agreeing)."""
    query = (
        select(Bid, Company, TechnicalSource)
        .join(OpeningLine, OpeningLine.bid_id == Bid.id)
        .join(Company, Company.id == Bid.company_id)
        .outerjoin(TechnicalSource, TechnicalSource.bid_id == Bid.id)
        .where(OpeningLine.tender_id == tender_id, OpeningLine.status == LineStatus.OPENED)
        .order_by(Bid.id)
    )
    if lot is not None:
        query = query.where(OpeningLine.lot_id == lot.id)
    rows = db.session.execute(query).all()
    records = []
    for bid, company, source in rows:
        sketch = [int(h) for h in source.text_sketch] if source and source.text_sketch else None
        records.append(
            sources.SourceRecord(
                label=_label(company),
                file_sha256=source.original_sha256 if source else None,
                text_sketch=sketch,
                author=source.author if source else None,
                creator=source.creator if source else None,
                producer=source.producer if source else None,
                address_hash=bid.address_hmac,
                agent_hash=bid.agent_hmac,
            )
        )
    return records


def screen_tender(tender_id: int) -> int:
    """Compute and store the price and same-source flags of one opened tender (nothing before
    its opening), per competition: each lot of a tender divided into lots is screened on its
    own (its bids, its ceiling; `RedFlag.competition` = the lot's reference, the subject
    `tender:<id>:lot:<ref>:...`), a tender of one lot as a whole. Never commits; returns how
    many flags are raised."""
    tender = db.session.get(Tender, tender_id)
    if tender is None or not _opened(tender):
        return 0
    prefix = f"tender:{tender_id}:"
    margins = _comparable_margins(tender)
    price_flags: list[tuple[str, screens.RedFlag, str]] = []
    source_flags: list[tuple[str, screens.RedFlag, str]] = []
    for lot, rows in competitions_of(tender):
        where = prefix if lot is None else f"{prefix}lot:{lot.reference}:"
        competition = "" if lot is None else lot.reference
        if rows:
            result = screens.screen_prices(
                [price for _, price, _ in rows],
                labels=[_label(company) for company, _, _ in rows],
                ceiling=_ceiling(tender, lot),
                comparable_margins=margins,
                thresholds=screen_thresholds(),
            )
            price_flags += [(where + _subject_key(f), f, competition) for f in result.flags]
        found = sources.same_source_flags(_source_records(tender_id, lot), source_thresholds())
        source_flags += [(where + _subject_key(f), f, competition) for f in found]
    count = _store(
        price_flags,
        kind=FlagKind.PRICE,
        tender_id=tender_id,
        centre_id=tender.centre_id,
        stale_prefix=prefix,
    )
    count += _store(
        source_flags,
        kind=FlagKind.SOURCE,
        tender_id=tender_id,
        centre_id=tender.centre_id,
        stale_prefix=prefix,
    )
    return count


# --- across tenders --------------------------------------------------------------------------


def _competitions(centre_id: int) -> tuple[list[market.Competition], dict[str, int]]:
    centre = db.session.get(TradingCentre, centre_id)
    tenders = db.session.scalars(
        select(Tender)
        .join(OpeningSession, OpeningSession.tender_id == Tender.id)
        .where(Tender.centre_id == centre_id, OpeningSession.status == OpeningStatus.COMPLETED)
        .order_by(OpeningSession.completed_at)
    ).all()
    out, counts = [], {}
    for tender in tenders:
        if tender.has_lots:
            # Each lot is a competition of its own bidders. Its winner is read once results
            # are per lot; until then the lot counts for bid counts, not for winners.
            for lot, rows in competitions_of(tender):
                bidders = {company.id: _label(company) for company, _, _ in rows}
                key = f"{tender.reference} (#{tender.id}) lot {lot.reference}"
                counts[key] = len(bidders)
                out.append(
                    market.Competition(
                        key=key,
                        bidders=frozenset(bidders.values()),
                        winner=None,
                        centre=centre.name if centre else str(centre_id),
                        entity=tender.procuring_entity or "",
                    )
                )
            continue
        bidders = {company.id: _label(company) for company, _, _ in _opened_prices(tender.id)}
        award = db.session.scalar(
            select(ResultNotice)
            .where(
                ResultNotice.tender_id == tender.id,
                ResultNotice.kind == NoticeKind.AWARD,
                ResultNotice.superseded_at.is_(None),
            )
            .order_by(ResultNotice.id.desc())
        )
        winner_id = ((award.content or {}).get("winner") or {}).get("company_id") if award else None
        key = f"{tender.reference} (#{tender.id})"
        counts[key] = len(bidders)
        out.append(
            market.Competition(
                key=key,
                bidders=frozenset(bidders.values()),
                winner=bidders.get(winner_id),
                centre=centre.name if centre else str(centre_id),
                entity=tender.procuring_entity or "",
            )
        )
    return out, counts


def _expert_label(user: User) -> str:
    return f"{user.full_name} (#{user.id})"


def _sittings(centre_id: int) -> list[market.Sitting]:
    rows = db.session.execute(
        select(PanelMember, User, Tender)
        .join(User, User.id == PanelMember.user_id)
        .join(Tender, Tender.id == PanelMember.tender_id)
        .where(Tender.centre_id == centre_id, PanelMember.status == MemberStatus.ACCEPTED)
        .order_by(PanelMember.created_at, PanelMember.id)
    ).all()
    return [
        market.Sitting(_expert_label(user), str(tender.id), tender.procuring_entity)
        for _, user, tender in rows
        if tender.procuring_entity
    ]


def _deviations(centre_id: int) -> list[market.SheetDeviation]:
    rows = db.session.execute(
        select(TechnicalScore, ScoreSheet, User, EvaluatedBid)
        .join(ScoreSheet, ScoreSheet.id == TechnicalScore.sheet_id)
        .join(User, User.id == ScoreSheet.user_id)
        .join(EvaluatedBid, EvaluatedBid.id == TechnicalScore.evaluated_bid_id)
        .join(Tender, Tender.id == ScoreSheet.tender_id)
        .where(Tender.centre_id == centre_id, ScoreSheet.locked_at.is_not(None))
    ).all()
    maxima: dict[int, dict[str, Decimal]] = {}
    cells: dict[tuple[int, str], list[tuple[str, Decimal]]] = defaultdict(list)
    for score, sheet, user, evaluated in rows:
        if sheet.tender_id not in maxima:
            tender = db.session.get(Tender, sheet.tender_id)
            try:
                maxima[sheet.tender_id] = {
                    c["key"]: c["max_points"] for c in technical_criteria(tender)
                }
            except Exception:  # a template without technical criteria
                maxima[sheet.tender_id] = {}
        try:
            value = Decimal(score.score)
        except InvalidOperation:
            continue
        cells[(evaluated.id, score.criterion)].append((_expert_label(user), value))
    tender_of = {evaluated.id: sheet.tender_id for _, sheet, _, evaluated in rows}
    out = []
    for (evaluated_id, criterion), marks in cells.items():
        maximum = maxima.get(tender_of[evaluated_id], {}).get(criterion)
        if not maximum or len(marks) < 3:
            continue
        for expert, value in marks:
            out.append(market.SheetDeviation(expert, value, median(v for _, v in marks), maximum))
    return out


def _market_subject(centre_id: int, flag: screens.RedFlag) -> str:
    p = flag.params
    parts = [p.get(k, "") for k in ("company", "winner", "companies", "kind", "subject")]
    parts += [p.get(k, "") for k in ("expert", "entity")]
    return f"centre:{centre_id}:" + "|".join(parts)[:260]


def screen_market(centre_ids: Sequence[int] | None = None) -> int:
    """Compute and store the market flags of every centre (over its opened tenders); never
    commits. Returns how many flags are raised."""
    thresholds = market_thresholds()
    if centre_ids is None:
        centre_ids = db.session.scalars(select(TradingCentre.id).order_by(TradingCentre.id)).all()
    total = 0
    for centre_id in centre_ids:
        competitions, counts = _competitions(centre_id)
        flags = market.cover_bidding(competitions, thresholds)
        flags += market.winner_rotation(competitions, thresholds)
        for by in ("centre", "entity"):
            flags += market.single_bid_shares(
                competitions, by=by, bid_counts=counts, thresholds=thresholds
            )
        flags += market.expert_repeated_entity(_sittings(centre_id), thresholds)
        flags += market.expert_score_deviation(_deviations(centre_id), thresholds)
        total += _store(
            ((_market_subject(centre_id, f), f) for f in flags),
            kind=FlagKind.MARKET,
            tender_id=None,
            centre_id=centre_id,
            stale_prefix=f"centre:{centre_id}:",
        )
    return total


def recently_opened(now: datetime, days: int = RESCREEN_DAYS) -> list[int]:
    return list(
        db.session.scalars(
            select(OpeningSession.tender_id).where(
                OpeningSession.status == OpeningStatus.COMPLETED,
                OpeningSession.completed_at >= now - timedelta(days=days),
            )
        )
    )


# --- presentation (supervisors only) ---------------------------------------------------------


def flag_json(flag: RedFlag) -> dict[str, Any]:
    evidence = dict(flag.evidence or {})
    message = evidence.pop("message", "")
    return {
        "id": flag.id,
        "kind": flag.kind,
        "rule": flag.rule,
        "title": str(RULE_TITLES.get(flag.rule, flag.rule)),
        "score": flag.score,
        "threshold": flag.threshold,
        "evidence": evidence,
        "message": message,
        "status": flag.status,
        "review_reason": flag.review_reason,
        "reviewed_by": flag.reviewed_by_id,
        "reviewed_at": flag.reviewed_at.isoformat() if flag.reviewed_at else None,
        "tender_id": flag.tender_id,
        "centre_id": flag.centre_id,
        "competition": flag.competition,
        "link": url_for("supervision_flags.show", flag_id=flag.id, _external=True),
        "tender_link": (
            url_for("tenders.show", tender_id=flag.tender_id, _external=True)
            if flag.tender_id
            else None
        ),
        "raised_at": flag.raised_at.isoformat(),
        "updated_at": flag.updated_at.isoformat(),
    }
