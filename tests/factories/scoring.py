"""A tender in the scoring stage, reached through the real flow: sealed bids opened by the
real ceremony, a seated panel, the evaluation started by staff, every required check
recorded and the review confirmed by the chair. Shared by the blind-scoring tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.accounts.models import User
from app.evaluations import operations, queries, scoring_file
from app.extensions import db
from app.opening.models import AnonymityDecision, EvaluatedBid
from app.tenders.models import Tender
from tests.factories.evaluations import Opened, opened_tender, seat_panel
from tests.factories.opening import staff_of


@dataclass
class Scoring:
    opened: Opened
    experts: list[User]  # by seat: experts[0] is seat 1, the chair

    @property
    def tender(self) -> Tender:
        return self.opened.tender

    @property
    def chair(self) -> User:
        return self.experts[0]

    def codes(self) -> list[str]:
        return [b.code for b in queries.evaluated_bids(self.tender)]

    def evaluated(self) -> list[EvaluatedBid]:
        return queries.evaluated_bids(self.tender)


def confirm_review(tender: Tender, chair: User) -> None:
    """Record every manual check as passed, accept every anonymity question, confirm."""
    for evaluated in queries.evaluated_bids(tender):
        for check in scoring_file.manual_checks(tender):
            operations.record_check(chair, tender, evaluated.bid_id, check, True, "Checked.")
        if evaluated.anonymity_decision == AnonymityDecision.PENDING:
            operations.decide_anonymity(chair, tender, evaluated.code, True, "Harmless.")
    operations.confirm_review(chair, tender)
    db.session.commit()


def scoring_tender(make_tender, make_user, prices, size: int = 3, **kw) -> Scoring:
    opened = opened_tender(make_tender, make_user, prices, **kw)
    experts = seat_panel(make_user, opened.tender, size)
    operations.start_evaluation(staff_of(opened.tender), opened.tender, chair=experts[0])
    db.session.commit()
    confirm_review(opened.tender, experts[0])
    return Scoring(opened, experts)


def middle(criterion: scoring_file.Criterion) -> str:
    """A score in the criterion's step, away from 0 and the maximum."""
    steps = (criterion.max_points / criterion.step) // 2
    return format(steps * criterion.step, "f")


def fill_sheet(
    expert: User, tender: Tender, overrides: dict[tuple[str, str], str] | None = None
) -> None:
    """Score every criterion of every bid at the middle of its range (or `overrides`,
    keyed by (code, criterion); 0 and max get a reason) and save it."""
    overrides = overrides or {}
    entries = []
    for code in [b.code for b in queries.evaluated_bids(tender)]:
        for c in scoring_file.criteria_of(tender):
            value = overrides.get((code, c.key), middle(c))
            extreme = Decimal(value) in (0, c.max_points)
            entries.append(
                operations.ScoreEntry(code, c.key, value, "Reasoned." if extreme else "")
            )
    operations.save_scores(expert, tender, entries)
    db.session.commit()


def lock(expert: User, tender: Tender) -> None:
    operations.lock_sheet(expert, tender)
    db.session.commit()
