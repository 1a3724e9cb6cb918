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

# How lots are awarded when the per-company win limit binds (evaluation.lots.AwardRule).
LOT_AWARD_RULE_LABELS = {
    "lot_order": _l("award lots in their order"),
    "max_total_score": _l("choose the combination with the highest total score"),
    "min_total_price": _l("choose the combination with the lowest total price"),
}
