"""The JSON records a tender publishes as documents once its bids are sealed: the sealing
record (here), the opening record (`app.opening`) and the signed result notices
(`app.results`). Each is stored once in the blob store,
as the exact bytes that were signed or hashed, and kept as a `TenderDocument` of its kind."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.custody.operations import envelope_tender_id
from app.extensions import db
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument


def store_record(
    tender: Tender,
    kind: str,
    title: str,
    data: bytes,
    created_at: datetime,
    name: str | None = None,
) -> TenderDocument:
    """Store `data` (a JSON record) as the tender's document of `kind`, named after `name`
    (default: the kind) and the envelope tender id (e.g. `sealing-record-T12.json`)."""
    stored = blob_store().put_bytes(data)
    document = TenderDocument(
        tender_id=tender.id,
        kind=kind,
        title=title,
        filename=f"{(name or kind).replace('_', '-')}-{envelope_tender_id(tender)}.json",
        content_type="application/json",
        size=stored.size,
        sha256=stored.sha256,
        created_at=created_at,
    )
    db.session.add(document)
    db.session.flush()
    return document


def record_of(tender: Tender, kind: str) -> TenderDocument | None:
    """The tender's record of `kind` (the first, should there ever be two)."""
    return db.session.scalar(
        select(TenderDocument)
        .where(TenderDocument.tender_id == tender.id, TenderDocument.kind == kind)
        .order_by(TenderDocument.id)
        .limit(1)
    )
