from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.types import UTCDateTime
from app.extensions import db

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class AuditCheckpoint(db.Model):
    """A signed chain head (`bidding.audit_export.sign_checkpoint`), made by the clock."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    head: Mapped[str] = mapped_column(String(64))
    made_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)


class AuditEvent(db.Model):
    """Append-only, hash-chained. The database refuses UPDATE and DELETE (see migrations)."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # 1: the hash covers the whole event; 2: header + public and private payload hashes
    # (see bidding.audit_export)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The tender the event belongs to (header field from version 2 on; null: none)
    tender_id: Mapped[int | None] = mapped_column(Integer, index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    centre_id: Mapped[int | None] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    # Version 2: random hex hashed with the private payload (ip), never published, so the
    # published payload_private_sha256 cannot be brute-forced over the few IP addresses.
    salt: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def as_chain_dict(self) -> dict[str, Any]:
        return chain_dict(self)


def chain_dict(row: Any) -> dict[str, Any]:
    """The hashed view of an event, from an ORM object or a plain result row (with its private
    payload: publish it through `bidding.audit_export.public_event` or `export_lines`)."""
    return {
        "seq": row.seq,
        "version": row.version,
        "tender": row.tender_id,
        "occurred_at": row.occurred_at.strftime(TIMESTAMP_FORMAT),
        "actor_id": row.actor_id,
        "actor_role": row.actor_role,
        "centre_id": row.centre_id,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "ip": row.ip,
        "salt": row.salt,
        "data": json.loads(row.data),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise RuntimeError("the audit log is append-only")
