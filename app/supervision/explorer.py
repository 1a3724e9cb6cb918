"""The audit explorer: audit events found by tender, actor, centre, action and time, shown
with people's names and translated labels (app.supervision.timeline). A bidder's events
about a tender whose bids are still sealed name no one, as on the dashboard."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import or_, select

from app.accounts.models import Role, User
from app.audit import AuditEvent
from app.bids.models import Bid
from app.centres.models import TradingCentre
from app.core.formatting import platform_timezone
from app.extensions import db
from app.supervision.timeline import (
    ACTION_LABELS,
    BIDDER_ACTIONS,
    SEALED_STATUSES,
    action_label,
    role_label,
    tender_events_query,
    user_names,
)
from app.tenders.models import Tender

MAX_TEXT = 100


@dataclass(frozen=True)
class Filters:
    tender: Tender | None
    tender_text: str
    actor: str
    centre: TradingCentre | None
    action: str
    since: date | None
    until: date | None

    def args(self) -> dict[str, str]:
        out = {
            "tender": self.tender_text,
            "actor": self.actor,
            "centre": self.centre.code if self.centre else "",
            "action": self.action,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
        }
        return {k: v for k, v in out.items() if v}


class BadFilter(ValueError):
    pass


def _day(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadFilter(text) from None


def parse_filters(args) -> Filters:
    """The query arguments; a date that is not YYYY-MM-DD is a `BadFilter`. A tender is its
    id or its reference; an unknown one matches nothing."""
    tender_text = args.get("tender", "").strip()[:64]
    tender = None
    if tender_text:
        if tender_text.isdigit() and len(tender_text) < 10:
            tender = db.session.get(Tender, int(tender_text))
        if tender is None:
            tender = db.session.scalar(
                select(Tender).where(Tender.reference == tender_text).limit(1)
            )
    centre_code = args.get("centre", "").strip()[:32]
    centre = None
    if centre_code:
        centre = db.session.scalar(select(TradingCentre).where(TradingCentre.code == centre_code))
    return Filters(
        tender=tender,
        tender_text=tender_text,
        actor=args.get("actor", "").strip()[:MAX_TEXT],
        centre=centre,
        action=args.get("action", "").strip()[:64],
        since=_day(args.get("from", "").strip()),
        until=_day(args.get("to", "").strip()),
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=platform_timezone())


def search(filters: Filters):
    """The events matching every filter given, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if filters.tender_text:
        if filters.tender is None:
            return query.where(AuditEvent.seq < 0)
        inner = tender_events_query(filters.tender).whereclause
        query = query.where(inner)
    if filters.actor:
        like = f"%{filters.actor}%"
        # Staff, experts, custodians, supervisors: a search by a bidder's name would tell
        # which sealed tenders it bid for, so bidders are found through their tender only.
        ids = select(User.id).where(
            User.role != Role.BIDDER,
            or_(User.full_name.ilike(like), User.email.ilike(like)),
        )
        query = query.where(AuditEvent.actor_id.in_(ids))
    if filters.centre is not None:
        query = query.where(AuditEvent.centre_id == filters.centre.id)
    if filters.action:
        query = query.where(AuditEvent.action.startswith(filters.action))
    if filters.since:
        query = query.where(AuditEvent.occurred_at >= _start_of(filters.since))
    if filters.until:
        query = query.where(AuditEvent.occurred_at < _start_of(filters.until + timedelta(days=1)))
    return query


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    label: str
    actor: str
    role: str
    centre: str
    tender_id: int | None


def _tender_of(event: AuditEvent, bid_tenders: dict[str, int]) -> int | None:
    if event.object_type == "tender" and event.object_id and event.object_id.isdigit():
        return int(event.object_id)
    if event.object_type == "bid" and event.object_id in bid_tenders:
        return bid_tenders[event.object_id]
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    value = data.get("tender", data.get("tender_id")) if isinstance(data, dict) else None
    return value if isinstance(value, int) else None


def rows(events: list[AuditEvent]) -> list[Row]:
    bid_ids = [int(e.object_id) for e in events if e.object_type == "bid" and e.object_id]
    bid_tenders = {
        str(bid_id): tender_id
        for bid_id, tender_id in db.session.execute(
            select(Bid.id, Bid.tender_id).where(Bid.id.in_(bid_ids))
        ).all()
    }
    tender_ids = {_tender_of(e, bid_tenders) for e in events} - {None}
    statuses = dict(
        db.session.execute(
            select(Tender.id, Tender.status).where(Tender.id.in_(sorted(tender_ids)))
        ).all()
    )
    centres = dict(db.session.execute(select(TradingCentre.id, TradingCentre.code)).all())
    names = user_names(e.actor_id for e in events)
    out = []
    for event in events:
        tender_id = _tender_of(event, bid_tenders)
        sealed = statuses.get(tender_id) in SEALED_STATUSES
        hidden = sealed and (event.actor_role == Role.BIDDER or event.action in BIDDER_ACTIONS)
        if event.actor_id is None:
            actor = ""
        elif hidden:
            actor = role_label(Role.BIDDER)
        else:
            actor = names.get(event.actor_id, f"#{event.actor_id}")
        out.append(
            Row(
                event=event,
                label=action_label(event.action),
                actor=actor,
                role="" if hidden else role_label(event.actor_role),
                centre=centres.get(event.centre_id, ""),
                tender_id=tender_id if tender_id in statuses else None,
            )
        )
    return out


def known_actions() -> list[tuple[str, str]]:
    """(action, label) of every action with a label, sorted by label: the action picker."""
    return sorted(((a, str(label)) for a, label in ACTION_LABELS.items()), key=lambda p: p[1])
