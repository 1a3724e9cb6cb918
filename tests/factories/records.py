"""A finalised evaluation built directly in the database, for the records tests: the
tender, four bidders with opened bids and codes, a panel of five experts, and the scoring
file of `evaluation.samples.example_document()` with the bids renamed to the companies'
bidder ids and reasons on a few scores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

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


def works_document(bids: int = 7) -> tuple[str, dict]:
    """The built-in works template's YAML and a scoring file made from it: seven technical
    criteria, the average benchmark, `bids` bids of which the last is above the ceiling
    price and the one before it lacks a qualification document (both non-compliant)."""
    import json

    from app.evaluations.scoring_file import _scoring_config
    from app.tender_templates import builtin_template

    yaml_text = builtin_template("works")
    values = {
        "ceiling_price": "1200000.00",
        "bid_bond": "20000.00",
        "tender": {"id": "T-WORKS", "reference": "R-WORKS", "title": "Road"},
    }
    document = json.loads(_scoring_config(yaml_text, json.dumps(values, sort_keys=True)))
    rules = document["compliance_rules"]
    criteria = document["technical_criteria"]
    for n in range(bids):
        price = f"{1_000_000 + 23_456 * n - (n % 3) * 50_123}.{n * 7 % 100:02d}"
        if n == bids - 1:
            price = "1234567.89"
        sheets = {
            f"E{e + 1}": {
                # half points between half and nine tenths of the maximum
                c["key"]: str(
                    Decimal(int(Decimal(c["max_points"]) * 2 * (5 + (n + e + i) % 5) / 10)) / 2
                )
                for i, c in enumerate(criteria)
            }
            for e in range(5)
        }
        documents = list(rules["required_documents"])
        if n == bids - 2:
            documents.remove("financial_statement")
        document["bids"].append(
            {
                "id": f"B{n + 1}",
                "price": price,
                "fields": {
                    "construction_days": "300",
                    "quality_standard": "qualified",
                    "bid_validity_days": "90",
                    "project_manager_registration": "yes",
                },
                "documents": documents,
                "compliance": dict.fromkeys(rules["required_checks"], True),
                "bid_bond": "20000.00",
                "technical": sheets,
            }
        )
    return yaml_text, document


def build_finalised(
    make_tender,
    make_user,
    make_company,
    *,
    locale=None,
    experts=5,
    ceiling_price=None,
    works=False,
):
    from app.accounts.models import Role
    from app.bids.models import Bid, BidStatus
    from app.bids.operations import bidder_id
    from app.core.types import utcnow
    from app.evaluations.models import Evaluation, EvaluationStage
    from app.extensions import db
    from app.opening.models import EvaluatedBid, LineStatus, OpeningLine
    from app.panels.models import MemberStatus, PanelMember

    tender = make_tender(status="evaluating", category="works" if works else "goods")
    staff = make_user(Role.STAFF, centre=tender.centre, locale=locale)
    bidder = make_user(Role.BIDDER)
    now = utcnow()
    if works:
        yaml_text, document = works_document()
        tender.template_version.yaml_text = yaml_text
    else:
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
    first, second = (c["key"] for c in document["technical_criteria"][:2])
    document["bids"][0]["technical_reasons"] = {"E1": {first: "Clear design, minor gaps"}}
    document["bids"][1]["technical_reasons"] = {"E3": {second: "Best service plan"}}
    members = []
    for seat in range(1, experts + 1):
        expert = make_user(Role.EXPERT, full_name=f"Expert {seat} 김", locale=locale)
        db.session.add(
            PanelMember(
                tender_id=tender.id,
                user_id=expert.id,
                status=MemberStatus.ACCEPTED,
                position=seat,
                drawn_for="technical_economic",  # evaluation.draw.CORE_SEAT
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
