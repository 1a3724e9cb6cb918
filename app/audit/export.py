"""Signed checkpoints of the chain head and a tender's verifiable audit export (the format and
its verifier: `bidding.audit_export`; `python -m bidding verify-audit`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit import chain_head
from app.audit.models import AuditCheckpoint, AuditEvent, chain_dict
from app.extensions import db
from bidding.audit_export import Checkpoint, export_lines
from bidding.receipts import dump_document

# A checkpoint is made at the next tick after one of these (a tender's milestones).
MILESTONES = (
    "tender.closed",
    "tender.sealed",
    "tender.opened",
    "record.signed",
    "results.candidates_published",
    "results.award_published",
    "tender.failed",
    "tender.cancelled",
)


def latest_checkpoint() -> AuditCheckpoint | None:
    return db.session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))


def checkpoint_due(now: datetime, period_minutes: int) -> str | None:
    """Why a checkpoint of the current head is due (`milestone`, `periodic`, `first`), or None:
    the head moved since the last one and a milestone happened since, or the period passed."""
    seq, _ = chain_head()
    last = latest_checkpoint()
    if seq == 0 or (last is not None and last.seq >= seq):
        return None
    if last is None:
        return "first"
    milestone = db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.seq > last.seq, AuditEvent.action.in_(MILESTONES))
    )
    if milestone:
        return "milestone"
    if (now - last.made_at).total_seconds() >= period_minutes * 60:
        return "periodic"
    return None


def make_checkpoint(
    now: datetime, reason: str, sign: Callable[[Checkpoint], dict[str, Any]]
) -> AuditCheckpoint | None:
    """Sign and store the current head (in the caller's transaction; the caller commits).
    None when it is already checkpointed (or a concurrent tick stored it first)."""
    seq, head = chain_head()
    if seq == 0:
        return None
    body = Checkpoint(seq=seq, head=head, made_at=now.isoformat(), reason=reason)
    document = dump_document(sign(body)).decode("ascii")
    row = AuditCheckpoint(seq=seq, head=head, made_at=now, reason=reason, document=document)
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except IntegrityError:
        return None
    return row


def checkpoints(limit: int = 100, before_seq: int | None = None) -> list[AuditCheckpoint]:
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditCheckpoint.seq < before_seq)
    return list(db.session.scalars(query))


def checkpoint_at(seq: int) -> AuditCheckpoint | None:
    return db.session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == seq))


def checkpoints_between(first_seq: int, last_seq: int) -> list[AuditCheckpoint]:
    return list(
        db.session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.seq >= first_seq, AuditCheckpoint.seq <= last_seq)
            .order_by(AuditCheckpoint.seq)
        )
    )


def export_range(tender_id: int) -> tuple[int, int] | None:
    """(from_seq, to_seq) of the tender's export: from the last checkpoint before its first
    event (0: the genesis) to the first checkpoint at or after its last event; None when the
    tender has no event or its last event is not checkpointed yet."""
    first, last = db.session.execute(
        select(func.min(AuditEvent.seq), func.max(AuditEvent.seq)).where(
            AuditEvent.tender_id == tender_id
        )
    ).one()
    if first is None:
        return None
    start = db.session.scalar(
        select(func.max(AuditCheckpoint.seq)).where(AuditCheckpoint.seq < first)
    )
    end = db.session.scalar(
        select(func.min(AuditCheckpoint.seq)).where(AuditCheckpoint.seq >= last)
    )
    if end is None:
        return None
    return (start or 0, end)


def _items(from_seq: int, to_seq: int, batch: int = 1000) -> Iterator[tuple[str, Any]]:
    marks = {c.seq: c.document for c in checkpoints_between(from_seq, to_seq)}
    if from_seq in marks:
        yield "checkpoint", json.loads(marks[from_seq])
    table = AuditEvent.__table__
    after = from_seq
    while after < to_seq:
        rows = db.session.execute(
            select(table)
            .where(table.c.seq > after, table.c.seq <= to_seq)
            .order_by(table.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield "event", chain_dict(row)
            if row.seq in marks:
                yield "checkpoint", json.loads(marks[row.seq])
        after = rows[-1].seq


def tender_export(tender_id: int, /, **header: Any) -> bytes | None:
    """The tender's audit export (JSON Lines), or None when it cannot be made yet (see
    `export_range`). `header` adds descriptive fields (envelope id, reference)."""
    span = export_range(tender_id)
    if span is None:
        return None
    from_seq, to_seq = span
    head = {"tender": tender_id, "from_seq": from_seq, "to_seq": to_seq, **header}
    return b"".join(export_lines(head, _items(from_seq, to_seq)))
