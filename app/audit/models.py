from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.types import UTCDateTime
from app.extensions import db

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class AuditEvent(db.Model):
    """Append-only, hash-chained. The database refuses UPDATE and DELETE (see migrations)."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    centre_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    data: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def as_chain_dict(self) -> dict[str, Any]:
        return chain_dict(self)


def chain_dict(row: Any) -> dict[str, Any]:
    """The hashed view of an event, from an ORM object or a plain result row."""
    return {
        "seq": row.seq,
        "occurred_at": row.occurred_at.strftime(TIMESTAMP_FORMAT),
        "actor_id": row.actor_id,
        "actor_role": row.actor_role,
        "centre_id": row.centre_id,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "ip": row.ip,
        "data": json.loads(row.data),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise RuntimeError("the audit log is append-only")
