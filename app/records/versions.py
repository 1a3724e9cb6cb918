"""The record's signed PDF, version by version: each signature (the platform's, then each
panel member's) stores a new version as a `TenderDocument` of kind "eval_record", marks the
one before it superseded, and makes itself the record's current document.

Below both the operations (countersigning) and the record job (the platform's signature),
which store versions the same way.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.core.errors import OperationError
from app.core.types import utcnow
from app.extensions import db
from app.records.models import EvaluationRecord
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument

RECORD_KIND = "eval_record"
PLATFORM_FIELD = "platform"


def member_field(seat: int) -> str:
    return f"member-{seat}"


def record_title(tender: Tender, record: EvaluationRecord) -> str:
    return f"Evaluation record {tender.reference} (round {record.round})"


def record_document(record: EvaluationRecord) -> TenderDocument | None:
    return db.session.get(TenderDocument, record.document_id) if record.document_id else None


def signed_version(record: EvaluationRecord | None) -> TenderDocument:
    """The record's current version (404 while there is none)."""
    document = record_document(record) if record is not None else None
    if document is None:
        raise OperationError(_l("The record has no signed file yet."), code="not_ready", status=404)
    return document


def record_pdf(record: EvaluationRecord) -> bytes:
    with blob_store().open(signed_version(record).sha256) as handle:
        return handle.read()


def store_version(
    record: EvaluationRecord, tender: Tender, pdf: bytes, title: str
) -> TenderDocument:
    """Store a new version of the record's PDF and make it the current one."""
    stored = blob_store().put_bytes(pdf)
    now = utcnow()
    previous = record_document(record)
    if previous is not None and previous.superseded_at is None:
        previous.superseded_at = now
    document = TenderDocument(
        tender_id=tender.id,
        kind=RECORD_KIND,
        title=title[:300],
        filename=f"evaluation-record-{_safe(tender.reference)}-r{record.round}.pdf",
        content_type="application/pdf",
        size=stored.size,
        sha256=stored.sha256,
        created_at=now,
    )
    db.session.add(document)
    db.session.flush()
    record.document_id = document.id
    return document


def _safe(reference: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in reference)[:80] or "tender"
