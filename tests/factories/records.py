"""A finalised evaluation built directly in the database, for the records tests: the
tender, four bidders with opened bids and codes, a panel of five experts, and the scoring
file of `evaluation.samples.example_document()` with the bids renamed to the companies'
bidder ids and reasons on a few scores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import evaluation
from evaluation import samples


@dataclass
class Finalised:
    tender: object
    staff: object
    experts: list
    companies: list
    evaluation: object
    scoring: dict
    scoring_json: str


def build_finalised(
    make_tender, make_user, make_company, *, locale=None, experts=5, ceiling_price=None
):
    from app.accounts.models import Role
    from app.bids.models import Bid, BidStatus
    from app.bids.operations import bidder_id
    from app.core.types import utcnow
    from app.evaluations.models import Evaluation, EvaluationStage
    from app.extensions import db
    from app.opening.models import EvaluatedBid, LineStatus, OpeningLine
    from app.panels.models import MemberStatus, PanelMember

    tender = make_tender(status="evaluating")
    staff = make_user(Role.STAFF, centre=tender.centre, locale=locale)
    bidder = make_user(Role.BIDDER)
    now = utcnow()
    document = samples.example_document()
    if ceiling_price is not None:
        document["ceiling_price"] = ceiling_price
    companies = []
    renamed = {}
    for i, bid in enumerate(document["bids"]):
        company = make_company(name=f"수원 Company {i + 1} 有限公司" if locale else None)
        companies.append(company)
        renamed[bid["id"]] = bidder_id(company)
        envelope = hashlib.sha256(f"envelope {i}".encode()).hexdigest()
        row = Bid(
            tender_id=tender.id,
            company_id=company.id,
            submitted_by_id=bidder.id,
            status=BidStatus.SUBMITTED,
            envelope_sha256=envelope,
            size=1000 + i,
            received_at=now - timedelta(days=2),
            receipt="{}",
        )
        db.session.add(row)
        db.session.flush()
        db.session.add(EvaluatedBid(tender_id=tender.id, bid_id=row.id, code=f"T-{i + 1}QK"))
        db.session.add(
            OpeningLine(
                tender_id=tender.id,
                bid_id=row.id,
                company_id=company.id,
                status=LineStatus.OPENED,
                price=bid["price"],
                commercial=None,
                envelope_sha256=envelope,
            )
        )
        bid["id"] = renamed[bid["id"]]
    document["bids"][0]["technical_reasons"] = {"E1": {"design": "Clear design, minor gaps"}}
    document["bids"][1]["technical_reasons"] = {"E3": {"service_plan": "Best service plan"}}
    members = []
    for seat in range(1, experts + 1):
        expert = make_user(Role.EXPERT, full_name=f"Expert {seat} 김", locale=locale)
        db.session.add(
            PanelMember(
                tender_id=tender.id,
                user_id=expert.id,
                status=MemberStatus.ACCEPTED,
                position=seat,
                drawn_for="engineering",
                conflict_declared_at=now - timedelta(days=1),
                conflict_statement="",
            )
        )
        members.append(expert)
    scored = evaluation.score(document)
    text = evaluation.dumps(scored)
    current = Evaluation(
        tender_id=tender.id,
        stage=EvaluationStage.FINALISED,
        round=1,
        chair_id=members[0].id,
        scoring_json=text,
        scoring_sha256=evaluation.input_sha256(scored),
        unblinded_at=now,
        finalised_at=now,
    )
    db.session.add(current)
    db.session.commit()
    return Finalised(tender, staff, members, companies, current, scored, text)
