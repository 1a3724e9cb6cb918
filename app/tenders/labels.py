"""Tender statuses as people read them."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.tenders.models import TenderStatus

STATUS_LABELS = {
    TenderStatus.PUBLISHED: _l("Open for bids"),
    TenderStatus.CLOSED: _l("Bidding closed"),
    TenderStatus.OPENED: _l("Bids opened"),
    TenderStatus.EVALUATING: _l("Under evaluation"),
    TenderStatus.CANDIDATES: _l("Candidates published"),
    TenderStatus.AWARDED: _l("Awarded"),
    TenderStatus.FAILED: _l("Failed"),
    TenderStatus.CANCELLED: _l("Cancelled"),
}
