"""What the supervisors' dashboard shows, from the database, for one scope (centres in the
supervisor's jurisdiction, a category, a period). The same snapshot feeds the page, its live
stream, its CSV and the JSON API.

Before the opening nobody may learn who bid, supervisors included: the snapshot carries
tenders (reference, title, centre, stage, times) and *counts* of envelopes, never a company,
a user, an envelope's size or its hash. Its rows are built here field by field, so nothing
else can slip in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from flask import abort, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.accounts.models import Role, User
from app.bids.models import Bid, BidStatus
from app.centres.models import TradingCentre
from app.centres.operations import centre_and_below
from app.clock.models import ClockAlert
from app.clock.service import alert_title
from app.core.formatting import platform_timezone
from app.core.types import timestamp, utcnow
from app.evaluations.models import Evaluation
from app.extensions import db
from app.opening.models import OpeningSession, OpeningStatus
from app.portal.queries import CATEGORIES
from app.results.models import Objection, ObjectionStatus
from app.tenders.labels import STATUS_LABELS
from app.tenders.models import Tender, TenderStatus
from app.tenders.suspension import SuspensionStatus, TenderSuspension

# The period filter: tenders published within it.
PERIODS = {
    "": (_l("Any time"), None),
    "today": (_l("Today"), 0),
    "7d": (_l("Last 7 days"), 7),
    "30d": (_l("Last 30 days"), 30),
    "365d": (_l("Last 12 months"), 365),
}
STAGES = [s for s in TenderStatus if s != TenderStatus.DRAFT]
# Stages whose envelopes are still sealed: only their count is known.
SEALED = (TenderStatus.PUBLISHED, TenderStatus.CLOSED)


# --- jurisdiction ----------------------------------------------------------------------------


def all_centres() -> list[TradingCentre]:
    return list(db.session.scalars(select(TradingCentre).order_by(TradingCentre.code)))


def descendants(root_id: int, centres: list[TradingCentre]) -> set[int]:
    children: dict[int | None, list[int]] = defaultdict(list)
    for centre in centres:
        children[centre.parent_id].append(centre.id)
    found, todo = set(), [root_id]
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(children.get(node, []))
    return found


def jurisdiction(user: User) -> list[TradingCentre]:
    """The centres a supervisor oversees (`app.centres.operations.oversees`): a supervisor
    placed at a centre sees it and every centre below it (a city: its counties and
    townships; a county: its townships); one placed nowhere, and administrators, all."""
    centres = all_centres()
    if user.role == Role.SUPERVISOR and user.centre_id:
        ids = centre_and_below(user.centre_id)
        return [c for c in centres if c.id in ids]
    return centres


@dataclass(frozen=True)
class Scope:
    centres: tuple[TradingCentre, ...]  # the centres shown (within the jurisdiction)
    centre: TradingCentre | None  # the centre filter (None: the whole jurisdiction)
    category: str
    period: str
    since: datetime | None

    @property
    def centre_ids(self) -> list[int]:
        return [c.id for c in self.centres]

    def args(self) -> dict[str, str]:
        """The filters as query arguments (links, the stream, the CSV)."""
        out = {"category": self.category, "period": self.period}
        if self.centre is not None:
            out["centre"] = self.centre.code
        return {k: v for k, v in out.items() if v}


def filters_from(args: Any) -> dict[str, str]:
    """The dashboard's query (`centre`, `category`, `period`) as `scope_for` arguments, the
    same for the pages, their stream and the API."""
    return {
        "centre_code": args.get("centre", "")[:32],
        "category": args.get("category", "")[:32],
        "period": args.get("period", "")[:8],
    }


def scope_for(user: User, centre_code: str = "", category: str = "", period: str = "") -> Scope:
    """The scope the filters ask for; a centre outside the jurisdiction is a 404, an unknown
    category or period a 400."""
    visible = jurisdiction(user)
    chosen = None
    centres = visible
    if centre_code:
        chosen = next((c for c in visible if c.code == centre_code), None)
        if chosen is None:
            abort(404)
        ids = descendants(chosen.id, visible)
        centres = [c for c in visible if c.id in ids]
    if category and category not in CATEGORIES:
        abort(400)
    if period not in PERIODS:
        abort(400)
    days = PERIODS[period][1]
    since = None
    if days is not None:
        since = day_bounds(utcnow())[0] - timedelta(days=days)
    return Scope(tuple(centres), chosen, category, period, since)


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Today, in the platform's time zone, as UTC bounds."""
    zone = platform_timezone()
    local = now.astimezone(zone).date()
    start = datetime.combine(local, time(0), tzinfo=zone)
    return start, start + timedelta(days=1)


# --- the snapshot ------------------------------------------------------------------------------


def tenders_query(scope: Scope):
    query = select(Tender).where(
        Tender.status != TenderStatus.DRAFT, Tender.centre_id.in_(scope.centre_ids)
    )
    if scope.category:
        query = query.where(Tender.category == scope.category)
    if scope.since is not None:
        query = query.where(Tender.published_at >= scope.since)
    return query


def tender_row(tender: Tender, codes: dict[int, str], **extra: Any) -> dict[str, Any]:
    """A tender as the dashboard names it: no bidder, ever."""
    return {
        "id": tender.id,
        "reference": tender.reference,
        "title": tender.title,
        "centre": codes.get(tender.centre_id, ""),
        "category": tender.category,
        "status": str(tender.status),
        "status_label": str(STATUS_LABELS.get(tender.status, tender.status)),
        "url": url_for("supervision.tender", tender_id=tender.id),
        **extra,
    }


def snapshot(scope: Scope, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    start, end = day_bounds(now)
    codes = {c.id: c.code for c in scope.centres}
    tenders = list(db.session.scalars(tenders_query(scope).order_by(Tender.id)))
    by_id = {t.id: t for t in tenders}
    ids = sorted(by_id)

    stages = {str(s): 0 for s in STAGES}
    per_centre: dict[int, dict[str, int]] = {c.id: dict(stages) for c in scope.centres}
    for tender in tenders:
        stages[str(tender.status)] += 1
        per_centre[tender.centre_id][str(tender.status)] += 1

    def rows(selected, **extra_of):
        return [tender_row(t, codes, **{k: f(t) for k, f in extra_of.items()}) for t in selected]

    suspended = set(
        db.session.scalars(
            select(TenderSuspension.tender_id).where(
                TenderSuspension.tender_id.in_(ids),
                TenderSuspension.status != SuspensionStatus.LIFTED,
            )
        )
    )
    envelope_counts = dict(
        db.session.execute(
            select(Bid.tender_id, func.count(Bid.id))
            .where(Bid.tender_id.in_(ids), Bid.status == BidStatus.SUBMITTED)
            .group_by(Bid.tender_id)
        ).all()
    )
    sessions = {
        s.tender_id: s
        for s in db.session.scalars(select(OpeningSession).where(OpeningSession.tender_id.in_(ids)))
    }
    evaluations = {
        e.tender_id: e
        for e in db.session.scalars(select(Evaluation).where(Evaluation.tender_id.in_(ids)))
    }
    objections = dict(
        db.session.execute(
            select(Objection.tender_id, func.count(Objection.id))
            .where(Objection.tender_id.in_(ids), Objection.status == ObjectionStatus.OPEN)
            .group_by(Objection.tender_id)
        ).all()
    )
    alerts = list(
        db.session.scalars(
            select(ClockAlert)
            .where(ClockAlert.tender_id.in_(ids), ClockAlert.resolved_at.is_(None))
            .order_by(ClockAlert.due_at, ClockAlert.id)
        )
    )

    live = [t for t in tenders if t.status in SEALED]
    waiting = []
    for tender in tenders:
        evaluation = evaluations.get(tender.id)
        if tender.status == TenderStatus.OPENED and evaluation is None:
            waiting.append((tender, "start"))
        elif tender.status == TenderStatus.EVALUATING and evaluation is not None:
            if evaluation.finalised_at is None:
                waiting.append((tender, str(evaluation.stage)))
            else:
                waiting.append((tender, "record"))
    in_progress = [
        (by_id[tid], s)
        for tid, s in sessions.items()
        if s.status in (OpeningStatus.UNLOCKING, OpeningStatus.OPENING)
    ]
    return {
        "generated_at": timestamp(now),
        "filters": scope.args(),
        "totals": {
            "tenders": len(tenders),
            "envelopes": sum(envelope_counts.get(t.id, 0) for t in live),
            "suspended": len(suspended),
            "alerts": len(alerts),
            "objections": sum(objections.values()),
        },
        "stages": stages,
        "suspended": rows([by_id[i] for i in sorted(suspended)]),
        "deadlines_today": rows(
            sorted(
                (
                    t
                    for t in tenders
                    if t.status == TenderStatus.PUBLISHED and start <= t.submission_deadline < end
                ),
                key=lambda t: t.submission_deadline,
            ),
            deadline=lambda t: timestamp(t.submission_deadline),
        ),
        "openings_today": rows(
            sorted(
                (t for t in tenders if t.status in SEALED and start <= t.opening_at < end),
                key=lambda t: t.opening_at,
            ),
            opening_at=lambda t: timestamp(t.opening_at),
        ),
        # Counts only: how many envelopes a tender holds, never whose or how large.
        "envelopes": rows(live, envelopes=lambda t: envelope_counts.get(t.id, 0)),
        "openings_in_progress": [
            tender_row(t, codes, ceremony=str(s.status), started_at=timestamp(s.started_at))
            for t, s in sorted(in_progress, key=lambda pair: pair[0].id)
        ],
        "evaluations_waiting": [
            tender_row(t, codes, waiting_for=w, waiting_label=waiting_label(w)) for t, w in waiting
        ],
        "objections_open": rows(
            [by_id[i] for i in sorted(objections)], objections=lambda t: objections[t.id]
        ),
        "alerts": [
            tender_row(
                by_id[a.tender_id],
                codes,
                alert=a.kind,
                alert_title=alert_title(a.kind),
                due_at=timestamp(a.due_at),
            )
            for a in alerts
        ],
        "centres": [
            {
                "code": c.code,
                "name": c.name,
                "level": c.level,
                "url": url_for("supervision.centre", centre_code=c.code),
                "stages": per_centre[c.id],
                "tenders": sum(per_centre[c.id].values()),
            }
            for c in scope.centres
        ],
    }


WAITING_LABELS = {
    "start": _l("to start"),
    "review": _l("compliance review"),
    "scoring": _l("scoring"),
    "unblinded": _l("ranking"),
    "finalised": _l("finalised"),
    "record": _l("signed record"),
}


def waiting_label(key: str) -> str:
    return str(WAITING_LABELS.get(key, key))
