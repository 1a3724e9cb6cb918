"""Reading the results of a tender: its notices and objections, the companies that took
part, the signed record of the evaluation's round, and the lines of the scoring file that
notices and letters show. Below both the operations and the letters (which the operations'
job makes), so that neither imports the other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.bids.models import Bid, BidStatus
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.core.types import utcnow
from app.evaluations.models import Evaluation
from app.evaluations.presentation import reason_text
from app.evaluations.scoring_file import several_lots, stored_lots
from app.extensions import db
from app.permissions import Permission, can
from app.records.models import EvaluationRecord, RecordStatus
from app.results.models import NoticeKind, Objection, ObjectionStatus, ResultNotice
from app.tenders.models import Lot, Tender

log = logging.getLogger(__name__)

CANDIDATE_COUNT = 3
SIGNED_RECORD = frozenset({RecordStatus.SIGNED, RecordStatus.COMPLETE})


def notices_of(tender: Tender) -> list[ResultNotice]:
    return list(
        db.session.scalars(
            select(ResultNotice)
            .where(ResultNotice.tender_id == tender.id)
            .order_by(ResultNotice.published_at, ResultNotice.id)
        )
    )


def current_notice(tender: Tender) -> ResultNotice | None:
    """The latest notice still in force (None before the candidates are published)."""
    return db.session.scalar(
        select(ResultNotice)
        .where(ResultNotice.tender_id == tender.id, ResultNotice.superseded_at.is_(None))
        .order_by(ResultNotice.published_at.desc(), ResultNotice.id.desc())
        .limit(1)
    )


# --- a tender of several lots: each lot its own notices ----------------------------------

# A lot's result as pages, the API and OCDS show it.
LOT_PENDING = "pending"  # no notice yet (under evaluation)
LOT_CANDIDATES = "candidates"
LOT_AWARDED = "awarded"
LOT_FAILED = "failed"
LOT_STATUS_OF_NOTICE = {
    NoticeKind.CANDIDATES: LOT_CANDIDATES,
    NoticeKind.AWARD: LOT_AWARDED,
    NoticeKind.FAILED: LOT_FAILED,
}


def result_lots(tender: Tender) -> list[Lot]:
    """The lots whose results are published one by one: a tender of several lots, in lot
    order (empty for a tender of one lot, whose notices are the tender's)."""
    return several_lots(tender)


def lot_notices(tender: Tender) -> dict[int, ResultNotice]:
    """The notice in force of each lot (by lot id), for the lots that have one."""
    found: dict[int, ResultNotice] = {}
    for notice in notices_of(tender):
        if notice.lot_id is not None and notice.superseded_at is None:
            found[notice.lot_id] = notice  # the latest wins (notices_of is oldest first)
    return found


def tender_failure(tender: Tender) -> ResultNotice | None:
    """A failure notice of the whole tender in force (every lot failed with it)."""
    return db.session.scalar(
        select(ResultNotice)
        .where(
            ResultNotice.tender_id == tender.id,
            ResultNotice.lot_id.is_(None),
            ResultNotice.kind == NoticeKind.FAILED,
            ResultNotice.superseded_at.is_(None),
        )
        .order_by(ResultNotice.id.desc())
        .limit(1)
    )


def lot_states(tender: Tender, now=None) -> list[dict[str, Any]]:
    """Per lot, in lot order: {"lot", "notice" (in force, or None), "status" (pending,
    candidates, awarded, failed), "window_open", "open_objections"} (empty for one lot)."""
    lots = result_lots(tender)
    if not lots:
        return []
    notices = lot_notices(tender)
    whole = tender_failure(tender)
    open_by_notice: dict[int, int] = {}
    for objection in open_objections(tender):
        open_by_notice[objection.notice_id] = open_by_notice.get(objection.notice_id, 0) + 1
    states = []
    for lot in lots:
        notice = notices.get(lot.id)
        if whole is not None and (notice is None or notice.kind == NoticeKind.CANDIDATES):
            notice = whole
        status = LOT_STATUS_OF_NOTICE[notice.kind] if notice is not None else LOT_PENDING
        states.append(
            {
                "lot": lot,
                "notice": notice,
                "status": status,
                "window_open": window_open(notice, now),
                "open_objections": open_by_notice.get(notice.id, 0) if notice else 0,
            }
        )
    return states


def lot_bidders(tender: Tender, lot: Lot) -> list[Company]:
    """Companies with a submitted bid for the lot."""
    return list(
        db.session.scalars(
            select(Company)
            .join(Bid, Bid.company_id == Company.id)
            .where(
                Bid.tender_id == tender.id,
                Bid.lot_id == lot.id,
                Bid.status == BidStatus.SUBMITTED,
            )
            .distinct()
            .order_by(Company.id)
        )
    )


def lot_files(evaluation: Evaluation | None) -> dict[str, dict]:
    """Each lot's scored file by lot reference (empty for a tender of one lot)."""
    stored = stored_lots(evaluation)
    if stored is None:
        return {}
    return {str(entry["lot"]): entry["scoring_file"] for entry in stored.get("lots") or []}


def notices_in_force(tender: Tender) -> list[ResultNotice]:
    """Every notice not superseded (one per lot at most, or the tender's)."""
    return [n for n in notices_of(tender) if n.superseded_at is None]


def objections_of(tender: Tender, company_id: int | None = None) -> list[Objection]:
    query = select(Objection).where(Objection.tender_id == tender.id)
    if company_id is not None:
        query = query.where(Objection.company_id == company_id)
    return list(db.session.scalars(query.order_by(Objection.filed_at, Objection.id)))


def open_objections(tender: Tender) -> list[Objection]:
    return [o for o in objections_of(tender) if o.status == ObjectionStatus.OPEN]


def bidding_companies(tender: Tender) -> list[Company]:
    """Companies with a submitted (current) bid for the tender: those who took part."""
    return list(
        db.session.scalars(
            select(Company)
            .join(Bid, Bid.company_id == Company.id)
            .where(Bid.tender_id == tender.id, Bid.status == BidStatus.SUBMITTED)
            .distinct()
            .order_by(Company.id)
        )
    )


def took_part(company_id: int | None, tender: Tender, lot: Lot | None = None) -> bool:
    """Whether the company submitted a bid for the tender (for `lot` when given)."""
    if company_id is None:
        return False
    query = (
        select(func.count())
        .select_from(Bid)
        .where(
            Bid.tender_id == tender.id,
            Bid.company_id == company_id,
            Bid.status == BidStatus.SUBMITTED,
        )
    )
    if lot is not None:
        query = query.where(Bid.lot_id == lot.id)
    return db.session.scalar(query) > 0


def signed_record(tender: Tender, evaluation: Evaluation | None) -> EvaluationRecord | None:
    """The signed record of the evaluation's current round, if there is one."""
    if evaluation is None:
        return None
    return db.session.scalar(
        select(EvaluationRecord).where(
            EvaluationRecord.tender_id == tender.id,
            EvaluationRecord.round == evaluation.round,
            EvaluationRecord.status.in_(list(SIGNED_RECORD)),
        )
    )


def scoring_file(evaluation: Evaluation | None) -> dict | None:
    if evaluation is None or not evaluation.scoring_json:
        return None
    try:
        return json.loads(evaluation.scoring_json)
    except ValueError:
        log.error("evaluation of tender %s: scoring file is not JSON", evaluation.tender_id)
        return None


def window_open(notice: ResultNotice | None, now=None) -> bool:
    return (
        notice is not None
        and notice.kind == NoticeKind.CANDIDATES
        and notice.objection_deadline is not None
        and (now or utcnow()) <= notice.objection_deadline
    )


def is_staff_of(user: Any, tender: Tender) -> bool:
    return can(user, Permission.VIEW_TENDERS, tender.centre_id)


def retender_links(tender: Tender) -> dict[str, dict | None]:
    """{"successor": {...}, "predecessor": {...}} from the audit events that link them."""
    links: dict[str, dict | None] = {"successor": None, "predecessor": None}
    for action, key, field in (
        ("tender.retendered", "successor", "retender_id"),
        ("tender.retender_of", "predecessor", "original_id"),
    ):
        event = db.session.scalar(
            select(AuditEvent)
            .where(
                AuditEvent.action == action,
                AuditEvent.object_type == "tender",
                AuditEvent.object_id == str(tender.id),
            )
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
        if event is not None:
            data = json.loads(event.data)
            other = db.session.get(Tender, data.get(field))
            if other is not None:
                links[key] = {"id": other.id, "reference": other.reference, "tender": other}
    return links


# --- the scoring file, for notices and letters ---------------------------------------------


def _result_rows(doc: dict | None) -> dict[str, dict]:
    """Scored bids of the scoring file by bid id."""
    if not doc:
        return {}
    return {row["id"]: row for row in (doc.get("result") or {}).get("bids", [])}


def _part_scores(row: dict) -> dict[str, str | None]:
    commercial = row.get("commercial_score") or {}
    technical = row.get("technical_score") or {}
    return {
        "price": row.get("price_score"),
        "commercial": commercial.get("total"),
        "technical": technical.get("total"),
    }


def ranked_candidates(
    doc: dict, companies: Iterable[Company], count: int | None = CANDIDATE_COUNT
) -> list[dict]:
    """Up to `count` (three; None: all) ranked candidates from the scoring file's ranking,
    named."""
    by_bidder = {bidder_id(company): company for company in companies}
    rows = _result_rows(doc)
    result = doc.get("result") or {}
    ranking = sorted(result.get("ranking") or [], key=lambda item: item["rank"])
    candidates = []
    for item in ranking[:count]:
        row = rows.get(item["bid"], {})
        company = by_bidder.get(item["bid"])
        candidates.append(
            {
                "rank": item["rank"],
                "bid": item["bid"],
                "company_id": company.id if company else None,
                "company": company.name if company else item["bid"],
                "price": row.get("price"),
                "total": row.get("total"),
                "scores": _part_scores(row),
            }
        )
    return candidates


def company_result(doc: dict | None, company: Company) -> dict | None:
    """One company's line of the scored file (its own scores, verdict with reasons in the
    current language, rank)."""
    row = _result_rows(doc).get(bidder_id(company))
    if row is None:
        return None
    return {
        "price": row.get("price"),
        "compliant": row.get("compliant"),
        "reasons": [
            reason_text(
                reason.get("code", ""), reason.get("params") or {}, reason.get("message", "")
            )
            for reason in row.get("reasons") or []
        ],
        "scores": _part_scores(row),
        "total": row.get("total"),
        "rank": row.get("rank"),
    }
