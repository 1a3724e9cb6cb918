"""The sealing job. Jobs take ids, run in an app context and commit their own work."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.bids import operations
from app.core.errors import OperationError
from app.extensions import db
from app.tasks import in_app_context
from app.tenders.models import Tender


@in_app_context
def seal_tender(tender_id: int) -> int:
    """RQ job: sign and publish the tender's sealing record (`operations.seal_bids`).
    Idempotent: the tender row is locked and a tender is sealed once; returns the record's
    TenderDocument id. Commits."""
    tender = db.session.scalar(
        select(Tender)
        .where(Tender.id == tender_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if tender is None:
        raise OperationError(_l("There is no such tender."), code="not_found", status=404)
    existing = operations.sealing_record_of(tender)
    if existing is not None:
        db.session.rollback()
        return existing.id
    record = operations.seal_bids(tender)
    db.session.commit()
    return record.id
