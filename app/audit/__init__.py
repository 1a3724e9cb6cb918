"""The tamper-evident audit log: `append_event` in the same transaction as every change."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import has_request_context, request
from sqlalchemy import select, text

from app.audit.chain import (
    GENESIS,
    HASH_VERSION,
    ChainBreak,
    canonical_json,
    event_hash,
    verify_events,
)
from app.audit.models import AuditCheckpoint, AuditEvent, chain_dict
from app.core.types import utcnow
from app.events import AUDIT_CHANNEL, publish_after_commit
from app.extensions import db

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "ChainBreak",
    "append_event",
    "chain_head",
    "verify_chain",
]

# pg_advisory_xact_lock key: serialises appends so two transactions never share a parent.
_PG_LOCK_KEY = 0x46414952  # "FAIR"


_FROM_REQUEST = object()


def append_event(
    action: str,
    *,
    actor: Any = None,
    object_type: str | None = None,
    object_id: Any = None,
    centre_id: int | None = None,
    data: dict[str, Any] | None = None,
    tender_id: int | None = None,
    ip: str | object | None = _FROM_REQUEST,
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction (never commits).

    `tender_id`: the tender the event belongs to (defaults to `object_id` for a tender
    object); it is in the hashed header, so a tender's audit export shows other tenders'
    events as stubs. `ip`: the client address recorded (default: the current request's;
    given when one transaction appends the events of several requests)."""
    return append_events(
        [
            EventSpec(
                action,
                actor=actor,
                object_type=object_type,
                object_id=object_id,
                centre_id=centre_id,
                data=data,
                tender_id=tender_id,
                ip=ip,
            )
        ]
    )[0]


def chain_lock() -> None:
    """Take the chain's append lock for the rest of the transaction (PostgreSQL; SQLite
    serialises writers anyway)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


@dataclass(frozen=True)
class EventSpec:
    """One event for `append_events` (the arguments of `append_event`)."""

    action: str
    actor: Any = None
    object_type: str | None = None
    object_id: Any = None
    centre_id: int | None = None
    data: dict[str, Any] | None = None
    tender_id: int | None = None
    ip: str | object | None = _FROM_REQUEST


def append_events(
    specs: list[EventSpec], *, locked: bool = False, head: tuple[int, str] | None = None
) -> list[AuditEvent]:
    """Add several events to the chain, in order, inside the caller's transaction (never
    commits): one take of the lock, one read of the head, one INSERT round trip for all.
    `locked`: the caller's transaction holds the chain's lock already (`chain_lock`);
    `head`: the chain's head as `chain_head` gives it, read by the caller under that lock
    (with `locked` only)."""
    session = db.session
    if head is not None and not locked:
        raise ValueError("a head read outside the chain's lock may be stale")
    if not locked:
        chain_lock()
    if head is None:
        head = chain_head()
    seq, prev_hash = head[0] + 1, head[1]
    request_ip = request.remote_addr if has_request_context() else None
    events = []
    for spec in specs:
        actor = spec.actor
        actor_id = getattr(actor, "id", None)
        if actor_id is not None and getattr(actor, "is_authenticated", True) is False:
            actor_id = None
        tender_id = spec.tender_id
        object_id = spec.object_id
        if tender_id is None and spec.object_type == "tender" and str(object_id).isdigit():
            tender_id = int(object_id)
        event = AuditEvent(
            seq=seq,
            version=HASH_VERSION,
            tender_id=tender_id,
            occurred_at=utcnow(),
            actor_id=actor_id,
            actor_role=getattr(actor, "role", None) if actor_id else None,
            centre_id=spec.centre_id,
            action=spec.action,
            object_type=spec.object_type,
            object_id=None if object_id is None else str(object_id),
            ip=request_ip if spec.ip is _FROM_REQUEST else spec.ip,
            salt=secrets.token_hex(16),
            data=canonical_json(spec.data or {}),
            prev_hash=prev_hash,
        )
        event.hash = event_hash(event.as_chain_dict())
        events.append(event)
        seq, prev_hash = seq + 1, event.hash
    session.add_all(events)
    session.flush()
    for event in events:
        # Live pages hear of it after commit; the payload carries no event data.
        publish_after_commit(
            AUDIT_CHANNEL,
            {
                "seq": event.seq,
                "action": event.action,
                "centre_id": event.centre_id,
                "at": event.occurred_at,
            },
        )
    return events


def iter_events(batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every event in chain order, streamed in batches as plain rows (no identity map)."""
    table = AuditEvent.__table__
    after = 0
    while True:
        rows = db.session.execute(
            select(table).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield chain_dict(row)
        after = rows[-1].seq


def verify_chain(expected_head: str | None = None) -> ChainBreak | None:
    return verify_events(iter_events(), expected_head=expected_head)


def chain_head() -> tuple[int, str]:
    last = db.session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def event_data(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.data)
