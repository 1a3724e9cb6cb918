"""What the OCDS releases are built from: the rows of the opening, the result notices, the
evaluation records and the bidders, gathered for many tenders in a few queries.

Read-only. Only public facts leave here: opening lines (their prices reach the release only
after the award, see app.portal.ocds), published result notices and their documents,
companies that took part, and the evaluation's compliance verdict per bid. Nothing about
the panel is read.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import url_for
from sqlalchemy import CompoundSelect, Select, and_, func, select, union_all
from sqlalchemy.orm import joinedload, selectinload

from app.audit.export import MILESTONES
from app.audit.models import AuditCheckpoint, AuditEvent
from app.bids.models import Bid, BidStatus
from app.bids.operations import sealing_record_of, sealing_summary
from app.centres.models import TradingCentre
from app.companies.models import Company
from app.core.types import timestamp
from app.core.urls import public_url
from app.evaluations.models import Evaluation
from app.extensions import db
from app.opening.models import OpeningLine, OpeningSession, OpeningStatus
from app.portal.ocds import (
    Bidder,
    CheckpointFacts,
    NoticeFacts,
    OpenedEnvelope,
    OpeningFacts,
    SealingFacts,
    SuspensionFacts,
    TenderFacts,
    notice_entries,
)
from app.records.models import EvaluationRecord, RecordSignature
from app.results.models import NoticeKind, ResultNotice
from app.results.operations import cancellation_notice
from app.tenders.models import PUBLIC_STATUSES, Addendum, Lot, Tender, TenderStatus
from app.tenders.suspension import ResumeKind, TenderSuspension

log = logging.getLogger(__name__)

_DONE = (OpeningStatus.COMPLETED, OpeningStatus.FAILED)


def _public_tenders() -> Select:
    return select(Tender).where(Tender.status.in_(sorted(PUBLIC_STATUSES)))


def load_tenders(ids: Iterable[int]) -> list[Tender]:
    """Public tenders by id, with what their releases read loaded; drafts never."""
    ids = sorted(set(ids))
    if not ids:
        return []
    return list(
        db.session.scalars(
            _public_tenders()
            .where(Tender.id.in_(ids))
            .options(
                joinedload(Tender.centre),
                selectinload(Tender.lots),
                selectinload(Tender.documents),
                selectinload(Tender.enquiries),
                selectinload(Tender.addenda),
            )
            .order_by(Tender.id)
        )
    )


def gather(tenders: list[Tender]) -> list[TenderFacts]:
    """The facts of each tender, in the same order."""
    ids = [tender.id for tender in tenders]
    if not ids:
        return []
    sessions = {
        s.tender_id: s
        for s in db.session.scalars(
            select(OpeningSession).where(
                OpeningSession.tender_id.in_(ids), OpeningSession.status.in_(_DONE)
            )
        )
    }
    lines: dict[int, list[tuple[OpeningLine, datetime | None, int | None]]] = defaultdict(list)
    rows = db.session.execute(
        select(OpeningLine, Bid.received_at, Lot.number)
        .join(Bid, Bid.id == OpeningLine.bid_id)
        .outerjoin(Lot, Lot.id == OpeningLine.lot_id)
        .where(OpeningLine.tender_id.in_(ids))
        .order_by(OpeningLine.bid_id)
    )
    for line, received_at, lot_number in rows:
        lines[line.tender_id].append((line, received_at, lot_number))
    notices: dict[int, list[ResultNotice]] = defaultdict(list)
    for notice in db.session.scalars(
        select(ResultNotice)
        .where(ResultNotice.tender_id.in_(ids))
        .order_by(ResultNotice.published_at, ResultNotice.id)
    ):
        notices[notice.tender_id].append(notice)

    company_ids = {line.company_id for found in lines.values() for line, _, _ in found}
    for found in notices.values():
        for notice in found:
            for entry in notice_entries(_bare(notice)):
                if isinstance(entry.get("company_id"), int):
                    company_ids.add(entry["company_id"])
    companies = {
        c.id: Bidder(id=c.id, name=c.name, uscc=c.registration_number)
        for c in db.session.scalars(select(Company).where(Company.id.in_(sorted(company_ids))))
    }
    documents = _notice_documents(tenders, [n for found in notices.values() for n in found])
    awarded = [tid for tid, found in notices.items() if any(n.kind == "award" for n in found)]
    verdicts = _verdicts(awarded)
    lot_verdicts = _lot_verdicts(awarded, {t.id: t for t in tenders})
    priors = _priors(ids)
    withdrawals = dict(
        db.session.execute(
            select(Bid.tender_id, func.count())
            .where(Bid.tender_id.in_(ids), Bid.status == BidStatus.WITHDRAWN)
            .group_by(Bid.tender_id)
        ).all()
    )

    anchors = _anchors(ids)
    suspensions: dict[int, list[SuspensionFacts]] = defaultdict(list)
    for row in db.session.scalars(
        select(TenderSuspension)
        .where(TenderSuspension.tender_id.in_(ids))
        .order_by(TenderSuspension.suspended_at, TenderSuspension.id)
    ):
        suspensions[row.tender_id].append(
            SuspensionFacts(
                id=row.id,
                suspended_at=row.suspended_at,
                reason=row.reason,
                lifted_at=row.lifted_at,
                deadline_shift_seconds=row.paused_seconds if row.deadline_moved else 0,
                reevaluation=row.request_kind == ResumeKind.REEVALUATE,
                note=row.request_note if row.lifted_at else "",
            )
        )

    out = []
    for tender in tenders:
        session = sessions.get(tender.id)
        opening = None
        if session is not None:
            opening = OpeningFacts(
                status=str(session.status),
                completed_at=session.completed_at,
                reason=session.reason or "",
                withdrawn_by_bidders=withdrawals.get(tender.id, 0),
                envelopes=tuple(
                    OpenedEnvelope(
                        bid_id=line.bid_id,
                        received_at=received_at,
                        company_id=line.company_id,
                        status=str(line.status),
                        price=line.price,
                        lot=lot_number,
                    )
                    for line, received_at, lot_number in lines.get(tender.id, [])
                ),
            )
        involved = {e.company_id for e in opening.envelopes} if opening else set()
        numbers = {lot.id: lot.number for lot in tender.lots}
        tender_notices = [
            NoticeFacts(
                id=n.id,
                kind=str(n.kind),
                published_at=n.published_at,
                content=n.content,
                reason=n.reason or "",
                documents=documents.get(n.id, ()),
                lot=numbers.get(n.lot_id) if n.lot_id is not None else None,
            )
            for n in notices.get(tender.id, [])
        ]
        for notice in tender_notices:
            for entry in notice_entries(notice):
                if isinstance(entry.get("company_id"), int):
                    involved.add(entry["company_id"])
        out.append(
            TenderFacts(
                tender=tender,
                opening=opening,
                notices=tender_notices,
                bidders={cid: companies[cid] for cid in involved if cid in companies},
                compliant=verdicts.get(tender.id, {}),
                lot_compliant=lot_verdicts.get(tender.id, {}),
                prior=priors.get(tender.id),
                sealing=_sealing(tender),
                checkpoints=anchors.get(tender.id, ()),
                cancellation=_cancellation(tender),
                suspensions=suspensions.get(tender.id, []),
            )
        )
    return out


def _cancellation(tender: Tender) -> tuple[Any, str] | None:
    document = cancellation_notice(tender)
    if document is None:
        return None
    return document, public_url("portal.cancellation_notice", tender_id=tender.id)


def _anchors(ids: list[int]) -> dict[int, tuple[CheckpointFacts, ...]]:
    """Per tender: the signed checkpoints that anchor its milestones (the first at or after
    each milestone event), in order. Two queries for any number of tenders."""
    first_after = (
        select(func.min(AuditCheckpoint.seq))
        .where(AuditCheckpoint.seq >= AuditEvent.seq)
        .correlate(AuditEvent)
        .scalar_subquery()
    )
    pairs = db.session.execute(
        select(AuditEvent.tender_id, first_after).where(
            AuditEvent.tender_id.in_(ids), AuditEvent.action.in_(MILESTONES)
        )
    ).all()
    wanted = {seq for _, seq in pairs if seq is not None}
    if not wanted:
        return {}
    rows = {
        row.seq: row
        for row in db.session.scalars(
            select(AuditCheckpoint).where(AuditCheckpoint.seq.in_(sorted(wanted)))
        )
    }
    found: dict[int, set[int]] = defaultdict(set)
    for tender_id, seq in pairs:
        if seq is not None:
            found[tender_id].add(seq)
    return {
        tender_id: tuple(
            CheckpointFacts(
                seq=seq,
                head=rows[seq].head,
                made_at=rows[seq].made_at,
                url=public_url("portal.checkpoint", seq=seq),
                export_url=public_url("portal.tender_audit", tender_id=tender_id),
            )
            for seq in sorted(seqs)
        )
        for tender_id, seqs in found.items()
    }


def _sealing(tender: Tender) -> SealingFacts | None:
    summary = sealing_summary(tender)
    if summary is None:
        return None
    return SealingFacts(
        root=summary["root"],
        count=summary["count"],
        document=sealing_record_of(tender),
        url=url_for("api.sealing_record", tender_id=tender.id, _external=True),
    )


def _priors(ids: list[int]) -> dict[int, tuple[str, str]]:
    """Re-tenders: tender id -> (ocid suffix, title) of the failed tender it replaces, from
    the audit event that linked them (`tender.retender_of`)."""
    originals: dict[int, int] = {}
    for event in db.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "tender.retender_of",
            AuditEvent.object_type == "tender",
            AuditEvent.object_id.in_([str(i) for i in ids]),
        )
        .order_by(AuditEvent.seq)
    ):
        original = json.loads(event.data).get("original_id")
        if isinstance(original, int):
            originals[int(event.object_id)] = original
    if not originals:
        return {}
    found = {
        t.id: t
        for t in db.session.scalars(select(Tender).where(Tender.id.in_(set(originals.values()))))
    }
    return {
        tid: (found[oid].ocid_suffix, found[oid].title)
        for tid, oid in originals.items()
        if oid in found
    }


def _bare(notice: ResultNotice) -> NoticeFacts:
    return NoticeFacts(
        id=notice.id,
        kind=str(notice.kind),
        published_at=notice.published_at,
        content=notice.content,
    )


def _notice_documents(
    tenders: list[Tender], notices: list[ResultNotice]
) -> dict[int, tuple[tuple[str, Any], ...]]:
    """Per notice: the evaluation record (the version that was current when the notice was
    published: countersignatures later add versions) and the notice's own document."""
    by_id = {d.id: d for tender in tenders for d in tender.documents}
    by_hash = {(d.tender_id, d.sha256): d for tender in tenders for d in tender.documents}
    record_ids = {n.record_id for n in notices if n.record_id}
    records = {
        r.id: r
        for r in db.session.scalars(
            select(EvaluationRecord).where(EvaluationRecord.id.in_(sorted(record_ids)))
        )
    }
    signatures: dict[int, list[RecordSignature]] = defaultdict(list)
    for signature in db.session.scalars(
        select(RecordSignature)
        .where(RecordSignature.record_id.in_(sorted(record_ids)))
        .order_by(RecordSignature.signed_at, RecordSignature.id)
    ):
        signatures[signature.record_id].append(signature)

    out: dict[int, tuple[tuple[str, Any], ...]] = {}
    for notice in notices:
        found: list[tuple[str, Any]] = []
        record = records.get(notice.record_id) if notice.record_id else None
        if record is not None:
            document = by_id.get(record.document_id) if record.document_id else None
            if document is not None and document.created_at > notice.published_at:
                earlier = [
                    by_hash.get((notice.tender_id, s.sha256))
                    for s in signatures.get(record.id, [])
                    if s.signed_at <= notice.published_at
                ]
                earlier = [d for d in earlier if d is not None]
                if earlier:
                    document = earlier[-1]
            if document is not None:
                found.append(("evaluationReports", document))
        if notice.document_id and notice.document_id in by_id:
            kind = "awardNotice" if notice.kind != NoticeKind.FAILED else "cancellationDetails"
            found.append((kind, by_id[notice.document_id]))
        out[notice.id] = tuple(found)
    return out


def _verdicts(tender_ids: list[int]) -> dict[int, dict[str, bool]]:
    """The evaluation's final compliance verdict per bidder id (its credit code)."""
    out: dict[int, dict[str, bool]] = {}
    if not tender_ids:
        return out
    for evaluation in db.session.scalars(
        select(Evaluation).where(
            Evaluation.tender_id.in_(sorted(tender_ids)), Evaluation.scoring_json.is_not(None)
        )
    ):
        try:
            scored = json.loads(evaluation.scoring_json or "")
            bids = scored["result"]["bids"]
            out[evaluation.tender_id] = {
                str(bid["id"]): bool(bid["compliant"]) for bid in bids if "compliant" in bid
            }
        except (ValueError, KeyError, TypeError):
            log.warning("scoring file of tender %s unreadable for OCDS", evaluation.tender_id)
    return out


def _lot_verdicts(
    tender_ids: list[int], tenders: dict[int, Tender]
) -> dict[int, dict[tuple[int, str], bool]]:
    """A tender of several lots: the verdict per (lot number, bidder id) from each lot's
    scoring file (`Evaluation.lots_json`)."""
    out: dict[int, dict[tuple[int, str], bool]] = {}
    if not tender_ids:
        return out
    for evaluation in db.session.scalars(
        select(Evaluation).where(
            Evaluation.tender_id.in_(sorted(tender_ids)), Evaluation.lots_json.is_not(None)
        )
    ):
        numbers = {lot.reference: lot.number for lot in tenders[evaluation.tender_id].lots}
        try:
            verdicts = {}
            for entry in json.loads(evaluation.lots_json or "")["lots"]:
                number = numbers.get(str(entry["lot"]))
                for bid in entry["scoring_file"]["result"]["bids"]:
                    if number is not None and "compliant" in bid:
                        verdicts[(number, str(bid["id"]))] = bool(bid["compliant"])
            out[evaluation.tender_id] = verdicts
        except (ValueError, KeyError, TypeError):
            log.warning("lot scoring files of tender %s unreadable for OCDS", evaluation.tender_id)
    return out


def _event_dates(centre: TradingCentre) -> CompoundSelect:
    """(tender id, moment) of every event that makes a release, for the centre's public
    tenders: publication, addenda, the opening's end, result notices, cancellation."""
    public = and_(Tender.centre_id == centre.id, Tender.status.in_(sorted(PUBLIC_STATUSES)))
    return union_all(
        select(
            Tender.id.label("tender_id"),
            func.coalesce(Tender.published_at, Tender.publication_at).label("moment"),
        ).where(public),
        select(Addendum.tender_id, Addendum.published_at)
        .join(Tender, Tender.id == Addendum.tender_id)
        .where(public),
        select(OpeningSession.tender_id, OpeningSession.completed_at)
        .join(Tender, Tender.id == OpeningSession.tender_id)
        .where(public, OpeningSession.status.in_(_DONE), OpeningSession.completed_at.is_not(None)),
        select(ResultNotice.tender_id, ResultNotice.published_at)
        .join(Tender, Tender.id == ResultNotice.tender_id)
        .where(public),
        select(Tender.id, Tender.cancelled_at).where(
            public, Tender.status == TenderStatus.CANCELLED, Tender.cancelled_at.is_not(None)
        ),
    ).subquery()


def release_months(centre: TradingCentre) -> list[str]:
    """ "YYYY-MM" (UTC) of every month in which the centre published a release, oldest first."""
    events = _event_dates(centre)
    moments = db.session.scalars(select(events.c.moment).distinct())
    return sorted({_month_of(moment) for moment in moments if moment is not None})


def tenders_with_events(centre: TradingCentre, start: datetime, end: datetime) -> list[int]:
    """Ids of the centre's public tenders with an event in [start, end)."""
    events = _event_dates(centre)
    ids = db.session.scalars(
        select(events.c.tender_id).where(events.c.moment >= start, events.c.moment < end).distinct()
    )
    return sorted(set(ids))


def _month_of(moment: datetime) -> str:
    if moment.tzinfo is None:  # a raw column read back from SQLite: stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return timestamp(moment)[:7]
